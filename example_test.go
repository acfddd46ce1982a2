package failoverblob_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/circuit"
	"github.com/failoverblob/failoverblob/failovertest"
)

// A failover bucket over two buckets is used like any *blob.Bucket. While the
// primary is healthy, writes land on it alone.
func ExampleNew() {
	ctx := context.Background()
	primary, secondary := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
	f, err := failoverblob.New(ctx, primary, secondary, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close() // closes both sides too

	bucket := f.Bucket()
	if err := bucket.WriteAll(ctx, "greeting.txt", []byte("hello"), nil); err != nil {
		log.Fatal(err)
	}
	data, err := bucket.ReadAll(ctx, "greeting.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))

	onPrimary, _ := primary.Exists(ctx, "greeting.txt")
	onSecondary, _ := secondary.Exists(ctx, "greeting.txt")
	fmt.Println("on the primary:", onPrimary, "on the secondary:", onSecondary)
	// Output:
	// hello
	// on the primary: true on the secondary: false
}

// OpenBucket suits code that only needs the *blob.Bucket; the control
// surface stays reachable through As. In Mirror mode every write goes to both
// sides.
func ExampleOpenBucket() {
	ctx := context.Background()
	secondary := memblob.OpenBucket(nil)
	bucket, err := failoverblob.OpenBucket(ctx, memblob.OpenBucket(nil), secondary,
		&failoverblob.Options{Mode: failoverblob.Mirror})
	if err != nil {
		log.Fatal(err)
	}
	defer bucket.Close()

	if err := bucket.WriteAll(ctx, "report.csv", []byte("a,b\n"), nil); err != nil {
		log.Fatal(err)
	}

	var f *failoverblob.Failover
	if !bucket.As(&f) {
		log.Fatal("the bucket is not a failover bucket")
	}
	onSecondary, _ := secondary.Exists(ctx, "report.csv")
	fmt.Println("mode:", f.Status().Mode, "- on the secondary:", onSecondary)
	// Output:
	// mode: mirror - on the secondary: true
}

// A write made while the primary is down lands on the secondary; once the
// primary is back, Drain copies it over and removes the temporary copy.
func ExampleFailover_Drain() {
	ctx := context.Background()
	base := memblob.OpenBucket(nil)
	defer base.Close()
	primary, faults := failovertest.Wrap(base, nil)
	secondary := memblob.OpenBucket(nil)
	f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{
		OnRepair: func(r failoverblob.Repair) {
			fmt.Printf("repaired %s on the %s: %s %d bytes, temporary copy removed: %t\n",
				r.Key, r.Side, r.Action, r.Bytes, r.Cleaned)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	faults.Outage(nil)
	if err := f.Bucket().WriteAll(ctx, "report.csv", []byte("a,b\n"), nil); err != nil {
		log.Fatal(err)
	}
	onSecondary, _ := secondary.Exists(ctx, "report.csv")
	fmt.Println("during the outage, on the secondary:", onSecondary)

	faults.Heal()
	rep, err := f.Drain(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("keys %d, copied %d (%d bytes), cleaned %d, remaining %d\n",
		rep.Keys, rep.Copied, rep.Bytes, rep.Cleaned, rep.Remaining)
	data, _ := base.ReadAll(ctx, "report.csv")
	fmt.Printf("on the primary: %q\n", data)
	// Output:
	// during the outage, on the secondary: true
	// repaired report.csv on the primary: copied 4 bytes, temporary copy removed: true
	// keys 1, copied 1 (4 bytes), cleaned 1, remaining 0
	// on the primary: "a,b\n"
}

// Status reports each side's breaker and the pending work. Here the breaker
// trips on the first outage.
func ExampleFailover_Status() {
	ctx := context.Background()
	primary, faults := failovertest.Wrap(memblob.OpenBucket(nil), nil)
	f, err := failoverblob.New(ctx, primary, memblob.OpenBucket(nil), &failoverblob.Options{
		Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 },
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	faults.Outage(nil)
	if err := f.Bucket().WriteAll(ctx, "report.csv", []byte("a,b\n"), nil); err != nil {
		log.Fatal(err)
	}
	st := f.Status()
	fmt.Println("mode:", st.Mode)
	fmt.Println("primary:", st.Primary.State, "- secondary:", st.Secondary.State)
	fmt.Println("pending:", st.Pending, "- oldest recorded:", !st.OldestPending.IsZero())
	// Output:
	// mode: redirect
	// primary: open - secondary: closed
	// pending: 1 - oldest recorded: true
}

// StatusHandler serves Status as JSON, with 503 while the primary is not
// healthy.
func ExampleFailover_StatusHandler() {
	ctx := context.Background()
	primary, pf := failovertest.Wrap(memblob.OpenBucket(nil), nil)
	secondary, sf := failovertest.Wrap(memblob.OpenBucket(nil), nil)
	f, err := failoverblob.New(ctx, primary, secondary, &failoverblob.Options{
		Breaker: &circuit.Settings{
			ReadyToTrip: func(c circuit.Counts) bool { return c.ConsecutiveFailures >= 1 },
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	h := f.StatusHandler()
	get := func(target string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		var st struct {
			Primary struct {
				State string `json:"state"`
			} `json:"primary"`
			Pending  int    `json:"pending"`
			Writable bool   `json:"writable"`
			Reason   string `json:"reason"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d primary %s, pending %d, writable %v (%s)\n", target, rec.Code, st.Primary.State, st.Pending, st.Writable, st.Reason)
	}

	pf.Outage(nil)
	_ = f.Bucket().WriteAll(ctx, "report.csv", []byte("a,b\n"), nil) // redirected
	get("/healthz")

	sf.Outage(nil)
	_ = f.Bucket().WriteAll(ctx, "report.csv", []byte("a,b,c\n"), nil) // fails: both down
	get("/healthz")
	get("/healthz?live")
	// Output:
	// /healthz: 200 primary open, pending 1, writable true (the primary is down; writes go to the secondary)
	// /healthz: 503 primary open, pending 1, writable false (both sides are down)
	// /healthz?live: 200 primary open, pending 1, writable false (both sides are down)
}

// Run reconciles in the background of a service until the bucket is closed.
func ExampleFailover_Run() {
	ctx := context.Background()
	primary, faults := failovertest.Wrap(memblob.OpenBucket(nil), nil)
	repaired := make(chan failoverblob.Repair, 1)
	f, err := failoverblob.New(ctx, primary, memblob.OpenBucket(nil), &failoverblob.Options{
		OnRepair: func(r failoverblob.Repair) { repaired <- r },
	})
	if err != nil {
		log.Fatal(err)
	}

	faults.Outage(nil)
	if err := f.Bucket().WriteAll(ctx, "report.csv", []byte("a,b\n"), &blob.WriterOptions{ContentType: "text/csv"}); err != nil {
		log.Fatal(err)
	}
	faults.Heal()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	r := <-repaired // Run's first pass starts at once
	fmt.Println(r.Key, r.Action)

	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Run returned:", <-done)
	// Output:
	// report.csv copied
	// Run returned: <nil>
}

// The README's recipe for testing your own code against an outage, as it
// is written there: the writes made during the outage reach the primary
// as soon as it is healed, with no wait for the breaker, whose opening the
// Drain's probe undoes.
func Example_rehearseAnOutage() {
	ctx := context.Background()
	base := memblob.OpenBucket(nil)
	defer base.Close() // Wrap does not close base
	primary, faults := failovertest.Wrap(base, nil)
	f, err := failoverblob.New(ctx, primary, memblob.OpenBucket(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	faults.Outage(nil) // every call now fails like a refused connection
	for i := range 10 {
		if err := f.Bucket().WriteAll(ctx, fmt.Sprintf("invoices/%d.pdf", i), []byte("pdf"), nil); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("primary breaker:", f.Status().Primary.State)
	faults.Heal()
	report, err := f.Drain(ctx)
	fmt.Println("copied:", report.Copied, "remaining:", report.Remaining, "err:", err)
	fmt.Println("primary breaker:", f.Status().Primary.State)
	// Output:
	// primary breaker: open
	// copied: 10 remaining: 0 err: <nil>
	// primary breaker: closed
}
