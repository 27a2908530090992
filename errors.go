// Package ittybit holds the vocabulary every layer shares: the error kinds
// of the contract and the one error type that carries them. It imports
// only the standard library, so that any package — the encoding domain,
// storage, the agent, the control plane, a plugin — may import it.
package ittybit

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorKind names a class of failure. The values are part of the external
// contract: API clients, CLI users and webhooks branch on them.
type ErrorKind string

// Validation kinds: what is wrong with a task request (HTTP 400).
const (
	ErrInputRequired ErrorKind = "input_required"
	ErrInvalidInput  ErrorKind = "invalid_input"
	ErrInvalidKind   ErrorKind = "invalid_kind"
	ErrInvalidFormat ErrorKind = "invalid_format"
	ErrInvalidCodec  ErrorKind = "invalid_codec"
	ErrInvalidOption ErrorKind = "invalid_option"
	ErrInvalidOutput ErrorKind = "invalid_output"
)

// Step kinds: why a step of an accepted task failed.
const (
	ErrInputBlocked     ErrorKind = "input_blocked"
	ErrFetchFailed      ErrorKind = "fetch_failed"
	ErrInputTooLarge    ErrorKind = "input_too_large"
	ErrInvalidMedia     ErrorKind = "invalid_media"
	ErrUnsupportedMedia ErrorKind = "unsupported_media"
	ErrEncodeFailed     ErrorKind = "encode_failed"
	ErrUploadFailed     ErrorKind = "upload_failed"
	ErrStalled          ErrorKind = "stalled"
	ErrCancelled        ErrorKind = "cancelled"
	ErrInternal         ErrorKind = "internal"
)

// API kinds: why a request failed, besides validation.
const (
	ErrInvalidJSON         ErrorKind = "invalid_json"
	ErrTokenMissing        ErrorKind = "token_missing"
	ErrTokenInvalid        ErrorKind = "token_invalid"
	ErrNotFound            ErrorKind = "not_found"
	ErrMethodNotAllowed    ErrorKind = "method_not_allowed"
	ErrIdempotencyConflict ErrorKind = "idempotency_conflict"
	ErrTaskFinished        ErrorKind = "task_finished"
	ErrPayloadTooLarge     ErrorKind = "payload_too_large"
	ErrRateLimited         ErrorKind = "rate_limited"
	ErrUnavailable         ErrorKind = "unavailable"
	// ErrRequestTimeout: the request's body did not arrive in time (a
	// client that stalls, or sends a byte at a time).
	ErrRequestTimeout ErrorKind = "request_timeout"
	// ErrCursorExpired: a cursor of GET /events names an event older
	// than the retention: the events after it are gone.
	ErrCursorExpired ErrorKind = "cursor_expired"
	// ErrCSRFFailed: a request by a console session that changes state
	// came without the session's CSRF token, or from another site.
	ErrCSRFFailed ErrorKind = "csrf_failed"
	// ErrClusterMismatch: a server asked to join a cluster with the data
	// of another cluster.
	ErrClusterMismatch ErrorKind = "cluster_mismatch"
	// Agent routes: the agent must register again; a report from an
	// attempt that no longer holds its step.
	ErrUnknownNode  ErrorKind = "unknown_node"
	ErrStaleAttempt ErrorKind = "stale_attempt"
	// ErrForbidden: the API key is valid but its scopes do not open the
	// route (a key without admin calling /keys; a project's key calling
	// a route of the whole cluster).
	ErrForbidden ErrorKind = "forbidden"
	// ErrInvalidScope: a key asked for with a scope that does not exist.
	ErrInvalidScope ErrorKind = "invalid_scope"
	// ErrUnknownProject: a key asked for in a project that does not exist.
	ErrUnknownProject ErrorKind = "unknown_project"
	// ErrConnectionRequired: a project's task reads or writes an S3
	// bucket the project has no connection for.
	ErrConnectionRequired ErrorKind = "connection_required"
	// ErrConnectionFailed: a connection's credentials could not write to
	// its bucket when it was made or changed; the message has the S3
	// error code.
	ErrConnectionFailed ErrorKind = "connection_failed"
)

// validationOrder ranks the validation kinds: when a request has several
// problems, the response's kind is that of the first in this order.
var validationOrder = []ErrorKind{
	ErrInputRequired, ErrInvalidInput, ErrInvalidKind, ErrInvalidFormat,
	ErrInvalidCodec, ErrInvalidOption, ErrInvalidOutput,
}

// Error is one problem with a name: what is wrong, with which field, and
// what is accepted instead.
type Error struct {
	// Kind classifies the problem (see the Err* constants).
	Kind ErrorKind `json:"kind"`
	// Field is the request field or option at fault ("input", "width"), or
	// empty when the problem is not about one field.
	Field string `json:"field,omitempty"`
	// Message says what was wrong and what is accepted. It names Field.
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Message }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one request field.
func FieldErrorf(kind ErrorKind, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Field: field, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of the first *Error in err's tree, or ErrInternal
// when err carries none. It returns "" for a nil err.
func KindOf(err error) ErrorKind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ErrInternal
}

// Problems flattens err (several problems joined with errors.Join, as a
// validation returns them) into its *Error values in a stable order: by
// kind (input first, output last), then as found. Errors in the tree that
// are not *Error become ErrInternal problems.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var e *Error
		if errors.As(err, &e) {
			out = append(out, e)
			return
		}
		out = append(out, &Error{Kind: ErrInternal, Message: err.Error()})
	}
	walk(err)
	rank := func(k ErrorKind) int {
		for i, v := range validationOrder {
			if v == k {
				return i
			}
		}
		return len(validationOrder)
	}
	// Insertion sort keeps equal kinds in the order they were found.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank(out[j].Kind) < rank(out[j-1].Kind); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Summary turns err into one kind and one message: the kind of the most
// basic problem and every problem's message joined with "; ". This is the
// API's error body.
func Summary(err error) (ErrorKind, string) {
	ps := Problems(err)
	if len(ps) == 0 {
		return "", ""
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return ps[0].Kind, strings.Join(msgs, "; ")
}
