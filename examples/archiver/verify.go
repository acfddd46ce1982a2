package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"
)

// verifyArchive checks the batches under prefix in b against the published
// messages (published[seq-1] is the message with sequence seq): each
// object's name must give the range of sequence numbers it holds, each
// message must hold the bytes published, and every published message must
// be in exactly one batch. It returns the problems found and the number of
// batches; err is for a bucket it could not read.
func verifyArchive(ctx context.Context, b *blob.Bucket, prefix string, published [][]byte) (problems []string, batches int, err error) {
	keys, _, err := listBatches(ctx, b, prefix)
	if err != nil {
		return nil, 0, err
	}
	seen := make([]int, len(published)+1) // seen[seq]: the batches holding it
	for _, key := range keys {
		data, err := b.ReadAll(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		for _, p := range checkBatch(key, prefix, data, published, seen) {
			problems = append(problems, key+": "+p)
		}
	}
	return append(problems, countProblems(seen)...), len(keys), nil
}

// checkBatch checks one object and counts the messages it holds in seen.
func checkBatch(key, prefix string, data []byte, published [][]byte, seen []int) []string {
	first, last, ok := parseName(prefix, key)
	if !ok {
		return []string{"the name does not give a range of sequence numbers"}
	}
	var problems []string
	want := first
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r record
		switch err := json.Unmarshal(sc.Bytes(), &r); {
		case err != nil:
			return append(problems, fmt.Sprintf("line %d: %v", want-first+1, err))
		case r.Seq != want:
			return append(problems, fmt.Sprintf("line %d holds message %d, want %d", want-first+1, r.Seq, want))
		case r.Seq > uint64(len(published)):
			return append(problems, fmt.Sprintf("holds message %d, which was never published", r.Seq))
		case !bytes.Equal(r.Data, published[r.Seq-1]):
			problems = append(problems, fmt.Sprintf("message %d holds %q, want %q", r.Seq, r.Data, published[r.Seq-1]))
		}
		seen[r.Seq]++
		want++
	}
	if want != last+1 {
		problems = append(problems, fmt.Sprintf("holds messages %d-%d, want %d-%d", first, want-1, first, last))
	}
	return problems
}

// parseName returns the range of sequence numbers an object's name gives.
func parseName(prefix, key string) (first, last uint64, ok bool) {
	var rest string
	n, _ := fmt.Sscanf(strings.TrimPrefix(key, prefix), "%d-%d%s", &first, &last, &rest)
	return first, last, n == 3 && rest == ".jsonl" && first > 0 && first <= last && objectName(prefix, first, last) == key
}

// batchRange shortens an object's name to the range it holds, for the
// timeline.
func batchRange(prefix, key string) string {
	if first, last, ok := parseName(prefix, key); ok {
		return fmt.Sprintf("%d-%d", first, last)
	}
	return key
}

// countProblems reports the messages that are in no batch or in more than
// one, a line per run of consecutive messages.
func countProblems(seen []int) []string {
	var problems []string
	for seq := 1; seq < len(seen); {
		end := seq
		for end+1 < len(seen) && seen[end+1] == seen[seq] {
			end++
		}
		switch seen[seq] {
		case 0:
			problems = append(problems, fmt.Sprintf("messages %d-%d are in no batch", seq, end))
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("messages %d-%d are in %d batches", seq, end, seen[seq]))
		}
		seq = end + 1
	}
	return problems
}

// listBatches returns the keys under prefix in b, and their total size.
func listBatches(ctx context.Context, b *blob.Bucket, prefix string) (keys []string, size int64, err error) {
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return keys, size, nil
		}
		if err != nil {
			return nil, 0, err
		}
		keys = append(keys, obj.Key)
		size += obj.Size
	}
}
