package providers_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProvidersLinkOnlyTheSDKsImported checks, with go list, that a program
// pays only for the providers it imports: this package links no cloud SDK,
// each provider package links only its own, and a program with the S3 and
// GCS providers links nothing of Azure's.
func TestProvidersLinkOnlyTheSDKsImported(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list dependencies with")
	}
	const (
		mod   = "github.com/failoverblob/failoverblob/"
		aws   = "github.com/aws/aws-sdk-go-v2"
		gcs   = "cloud.google.com/go/storage"
		azure = "azure" // any package path that names it, as grep -ci azure would
	)
	cases := []struct {
		imports []string
		absent  []string
	}{
		{[]string{"providers"}, []string{aws, gcs, azure}},
		{[]string{"providers/s3"}, []string{gcs, azure}},
		{[]string{"providers/gcs"}, []string{aws, azure}},
		{[]string{"providers/azure"}, []string{aws, gcs}},
		{[]string{"providers/s3", "providers/gcs"}, []string{azure}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.imports, "+"), func(t *testing.T) {
			args := []string{"list", "-deps"}
			for _, p := range c.imports {
				args = append(args, mod+p)
			}
			out, err := exec.Command(goTool, args...).Output()
			if err != nil {
				t.Fatalf("go %s: %v", strings.Join(args, " "), err)
			}
			deps := strings.Fields(string(out))
			for _, a := range c.absent {
				for _, d := range deps {
					if strings.Contains(strings.ToLower(d), a) {
						t.Errorf("importing %v links %s (matching %q); want none", c.imports, d, a)
						break
					}
				}
			}
		})
	}
}
