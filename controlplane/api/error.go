package api

import (
	"errors"

	"github.com/ittybit-oss/ittybit"
)

// Error is the error body of every failed request, and a task's or step's
// error: a kind clients branch on and a message that says what was wrong
// and what is accepted. It is the wire form of an ittybit.Error (or of
// several, for a request with many problems).
type Error struct {
	Kind ittybit.ErrorKind `json:"kind"`
	// Field names the request field or option at fault when the problem is
	// about one ("input", "width"); absent otherwise.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Errors lists each problem when a request had several (validation).
	Errors []*ittybit.Error `json:"errors,omitempty"`
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Message }

// FromError turns any error into an API error: an ittybit.Error keeps its
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
	ps := ittybit.Problems(err)
	kind, msg := ittybit.Summary(err)
	out := &Error{Kind: kind, Message: msg}
	switch {
	case len(ps) > 1:
		out.Errors = ps
	case len(ps) == 1:
		out.Field = ps[0].Field
	}
	return out
}
