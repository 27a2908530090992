package api

import (
	"errors"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Error is the error body of every failed request, and a task's or step's
// error: a kind clients branch on and a message that says what was wrong
// and what is accepted.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// Errors lists each problem when a request had several (validation).
	Errors []*encoders.Error `json:"errors,omitempty"`
}

func (e *Error) Error() string { return e.Kind + ": " + e.Message }

// FromError turns any error into an API error: encoders errors keep their
// kind and message (all problems of a validation), anything else is
// internal.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	ps := encoders.Problems(err)
	kind, msg := encoders.Summary(err)
	out := &Error{Kind: string(kind), Message: msg}
	if len(ps) > 1 {
		out.Errors = ps
	}
	return out
}
