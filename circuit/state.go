package circuit

import (
	"fmt"

	"github.com/sony/gobreaker/v2"
)

// State is the state of a Breaker. It marshals as text (in JSON, say) as
// its String.
type State int

// The states of a Breaker. A closed breaker lets every call through and
// counts outcomes; an open one refuses calls; a half-open one lets a few
// probe calls through to learn whether the side has recovered.
const (
	StateClosed State = iota
	StateHalfOpen
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return fmt.Sprintf("unknown state: %d", int(s))
	}
}

// MarshalText returns s's String, and an error for a State that is none of
// the three.
func (s State) MarshalText() ([]byte, error) {
	if s < StateClosed || s > StateOpen {
		return nil, fmt.Errorf("circuit: %s", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText sets s from its String.
func (s *State) UnmarshalText(text []byte) error {
	for st := StateClosed; st <= StateOpen; st++ {
		if string(text) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("circuit: unknown state %q", text)
}

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateClosed:
		return StateClosed
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	default:
		return StateOpen
	}
}
