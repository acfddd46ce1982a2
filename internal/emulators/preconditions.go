package emulators

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
)

// The emulators apply the preconditions of writes, but not those of
// deletes, which S3 (If-Match, since 2024) and GCS (ifGenerationMatch)
// apply. These handlers apply them in front of the emulator, so that a
// conditional delete fails there as it does on the real service.

// s3DeletePreconditions applies If-Match to S3 object deletes: the object's
// ETag, read with a HEAD, must match, or the answer is 412
// PreconditionFailed.
func s3DeletePreconditions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.Header.Get("If-Match")
		if r.Method != http.MethodDelete || want == "" || r.URL.Query().Has("uploadId") {
			next.ServeHTTP(w, r)
			return
		}
		head := httptest.NewRecorder()
		hr := r.Clone(r.Context())
		hr.Method, hr.Body, hr.ContentLength = http.MethodHead, http.NoBody, 0
		hr.Header.Del("If-Match")
		next.ServeHTTP(head, hr)
		got := head.Header().Get("ETag")
		if head.Code == http.StatusOK && strings.Trim(got, `"`) != strings.Trim(want, `"`) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusPreconditionFailed)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-Match</Condition></Error>`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// gcsDeletePreconditions applies ifGenerationMatch to GCS object deletes:
// the object's generation, read from its metadata, must match, or the
// answer is 412 conditionNotMet.
func gcsDeletePreconditions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("ifGenerationMatch")
		if r.Method != http.MethodDelete || want == "" || !strings.Contains(r.URL.Path, "/o/") {
			next.ServeHTTP(w, r)
			return
		}
		meta := httptest.NewRecorder()
		mr := r.Clone(r.Context())
		mr.Method, mr.Body, mr.ContentLength = http.MethodGet, http.NoBody, 0
		q := mr.URL.Query()
		q.Del("ifGenerationMatch")
		mr.URL.RawQuery = q.Encode()
		next.ServeHTTP(meta, mr)
		var obj struct {
			Generation string `json:"generation"`
		}
		if meta.Code == http.StatusOK && json.Unmarshal(meta.Body.Bytes(), &obj) == nil {
			if g, err := strconv.ParseInt(obj.Generation, 10, 64); err == nil && strconv.FormatInt(g, 10) != want {
				w.Header().Set("Content-Type", "application/json; charset=UTF-8")
				w.WriteHeader(http.StatusPreconditionFailed)
				_, _ = io.WriteString(w, `{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold.","errors":[{"message":"At least one of the pre-conditions you specified did not hold.","domain":"global","reason":"conditionNotMet"}]}}`)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
