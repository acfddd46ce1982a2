package azure

import (
	"context"
	"fmt"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/failoverblob/failoverblob/circuit"
)

// The Azure SDK carries a response's status in a field that the default
// classifier cannot read: a 503 from Azure is an outage only through
// Classifier.
func TestClassifier(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		want   bool
	}{{503, true}, {500, true}, {429, true}, {408, true}, {404, false}, {412, false}, {403, false}} {
		err := fmt.Errorf("azureblob: %w", &azcore.ResponseError{StatusCode: tc.status, ErrorCode: "Whatever"})
		if got := Classifier(ctx, err); got != tc.want {
			t.Errorf("Classifier(status %d) = %v, want %v", tc.status, got, tc.want)
		}
		if tc.want && circuit.DefaultClassifier(ctx, err) {
			t.Errorf("DefaultClassifier(status %d) = true; the test expects it not to know Azure's errors", tc.status)
		}
	}
}
