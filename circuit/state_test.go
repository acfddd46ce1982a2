package circuit_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/failoverblob/failoverblob/circuit"
)

func TestStateMarshalsAsItsName(t *testing.T) {
	for _, s := range []circuit.State{circuit.StateClosed, circuit.StateHalfOpen, circuit.StateOpen} {
		js, err := json.Marshal(struct{ State circuit.State }{s})
		require.NoError(t, err)
		require.JSONEq(t, `{"State":"`+s.String()+`"}`, string(js))
		var back struct{ State circuit.State }
		require.NoError(t, json.Unmarshal(js, &back))
		require.Equal(t, s, back.State)
	}
	_, err := json.Marshal(circuit.State(7))
	require.Error(t, err, "a State that is none of the three")
	var s circuit.State
	require.Error(t, s.UnmarshalText([]byte("ajar")))
}
