package circuit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"gocloud.dev/blob/memblob"

	"github.com/failoverblob/failoverblob/circuit"
)

func ExampleNew() {
	b := circuit.New(&circuit.Settings{
		Name: "primary",
		OnStateChange: func(name string, from, to circuit.State) {
			fmt.Printf("%s: %s -> %s\n", name, from, to)
		},
	})
	ctx := context.Background()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for range circuit.DefaultConsecutiveFailures {
		done, err := b.Allow(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		done(refused)
	}
	_, err := b.Allow(ctx)
	fmt.Println(err)
	fmt.Println(errors.Is(err, circuit.ErrOpen))
	// Output:
	// primary: closed -> open
	// primary: circuit breaker is open
	// true
}

func ExampleBreaker_Allow() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	b := circuit.New(&circuit.Settings{Name: "primary"})

	done, err := b.Allow(ctx)
	if err != nil {
		fmt.Println("primary unavailable:", err)
		return
	}
	// For a write, report the error from the writer's Close instead.
	_, err = bucket.ReadAll(ctx, "missing")
	done(err)

	// NotFound is an answer: the side is up.
	fmt.Println(b.IsOutage(ctx, err), b.State(), b.Counts().TotalSuccesses)
	// Output:
	// false closed 1
}

func ExampleDefaultClassifier() {
	ctx := context.Background()
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	fmt.Println(circuit.DefaultClassifier(ctx, reset))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	fmt.Println(circuit.DefaultClassifier(cancelled, reset))
	// Output:
	// true
	// false
}
