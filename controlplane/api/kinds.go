package api

import (
	"net/http"

	"github.com/ittybit-oss/ittybit"
)

// Status returns the HTTP status of an error kind: the one table of the
// contract.
func Status(kind ittybit.ErrorKind) int {
	switch kind {
	case ittybit.ErrInputRequired, ittybit.ErrInvalidInput, ittybit.ErrInvalidKind,
		ittybit.ErrInvalidFormat, ittybit.ErrInvalidCodec, ittybit.ErrInvalidOption,
		ittybit.ErrInvalidOutput, ittybit.ErrInvalidJSON, ittybit.ErrInvalidScope, ittybit.ErrUnknownProject,
		ittybit.ErrConnectionRequired, ittybit.ErrConnectionFailed:
		return http.StatusBadRequest
	case ittybit.ErrTokenMissing, ittybit.ErrTokenInvalid:
		return http.StatusUnauthorized
	case ittybit.ErrCSRFFailed, ittybit.ErrForbidden:
		return http.StatusForbidden
	case ittybit.ErrNotFound, ittybit.ErrUnknownNode:
		return http.StatusNotFound
	case ittybit.ErrMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case ittybit.ErrIdempotencyConflict, ittybit.ErrTaskFinished, ittybit.ErrStaleAttempt, ittybit.ErrClusterMismatch:
		return http.StatusConflict
	case ittybit.ErrCursorExpired:
		return http.StatusGone
	case ittybit.ErrRequestTimeout:
		return http.StatusRequestTimeout
	case ittybit.ErrPayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case ittybit.ErrRateLimited:
		return http.StatusTooManyRequests
	case ittybit.ErrUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
