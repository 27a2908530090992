package api

import (
	"net/http"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Error kinds of the HTTP API besides the validation kinds of encoders.
const (
	KindInvalidJSON         = "invalid_json"
	KindTokenMissing        = "token_missing"
	KindTokenInvalid        = "token_invalid"
	KindNotFound            = "not_found"
	KindMethodNotAllowed    = "method_not_allowed"
	KindIdempotencyConflict = "idempotency_conflict"
	KindTaskFinished        = "task_finished"
	KindPayloadTooLarge     = "payload_too_large"
	KindRateLimited         = "rate_limited"
	KindUnavailable         = "unavailable"
	KindInternal            = "internal"
	// Agent routes: the agent must register again; a report from an
	// attempt that no longer holds its step.
	KindUnknownNode  = "unknown_node"
	KindStaleAttempt = "stale_attempt"
)

// Status returns the HTTP status of an error kind: the one table of the
// contract.
func Status(kind string) int {
	switch kind {
	case string(encoders.ErrInputRequired), string(encoders.ErrInvalidInput), string(encoders.ErrInvalidKind),
		string(encoders.ErrInvalidFormat), string(encoders.ErrInvalidCodec), string(encoders.ErrInvalidOption),
		string(encoders.ErrInvalidOutput), KindInvalidJSON:
		return http.StatusBadRequest
	case KindTokenMissing, KindTokenInvalid:
		return http.StatusUnauthorized
	case KindNotFound, KindUnknownNode:
		return http.StatusNotFound
	case KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case KindIdempotencyConflict, KindTaskFinished, KindStaleAttempt:
		return http.StatusConflict
	case KindPayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindRateLimited:
		return http.StatusTooManyRequests
	case KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Errorf returns an *Error of a kind.
func Errorf(kind, message string) *Error { return &Error{Kind: kind, Message: message} }
