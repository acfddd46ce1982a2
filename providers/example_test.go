package providers_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"

	"github.com/failoverblob/failoverblob"
	"github.com/failoverblob/failoverblob/providers"
	_ "github.com/failoverblob/failoverblob/providers/gcs" // gs://
	_ "github.com/failoverblob/failoverblob/providers/s3"  // s3://
)

// A failover bucket opened by URL: the sides' URLs are query-escaped into
// the failover URL's primary and secondary parameters. With s3:// and gs://
// sides (providers/s3 and providers/gcs imported, as here) it would read
//
//	failover://?primary=s3%3A%2F%2Fassets%3Fregion%3Dus-east-1&secondary=gs%3A%2F%2Fassets-dr
//
// This example uses two directories on the local disk instead, so that it
// runs anywhere.
func Example_openBucketFromURL() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "failover-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	side := func(name string) string {
		return url.QueryEscape("file://" + filepath.ToSlash(filepath.Join(dir, name)) + "?create_dir=1")
	}
	bucket, err := providers.OpenBucket(ctx, "failover://?primary="+side("primary")+"&secondary="+side("secondary")+"&mode=mirror")
	if err != nil {
		log.Fatal(err)
	}
	defer bucket.Close() // stops the reconciler the URL started, and closes the sides

	if err := bucket.WriteAll(ctx, "hello.txt", []byte("hello"), nil); err != nil {
		log.Fatal(err)
	}
	var f *failoverblob.Failover
	if bucket.As(&f) {
		fmt.Println("mode:", f.Status().Mode)
	}
	for _, name := range []string{"primary", "secondary"} {
		b, err := os.ReadFile(filepath.Join(dir, name, "hello.txt"))
		fmt.Printf("%s: %q %v\n", name, b, err)
	}
	// Output:
	// mode: mirror
	// primary: "hello" <nil>
	// secondary: "hello" <nil>
}
