package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/internal/jsonobj"
)

// requestFields are the fields of a create request, in the seed's order.
var requestFields = []string{"input", "kind", "options", "output", "metadata", "priority"}

// decodeCreate reads a POST /tasks body. It fails only when the body is not
// a JSON object or a field has the wrong JSON type; option values are left
// to encoders.Validate, which reports every problem at once.
func decodeCreate(body []byte) (api.CreateTaskRequest, error) {
	req, _, err := decodeCreateOptions(body)
	return req, err
}

// noOptions is what Options.AppendJSON writes for none.
var noOptions = []byte("{}")

// decodeCreateOptions is decodeCreate, with the request's options as
// json.Marshal writes them ({} for none, nil when they do not encode;
// shared: never change them).
func decodeCreateOptions(body []byte) (api.CreateTaskRequest, []byte, error) {
	var req api.CreateTaskRequest
	opts := noOptions
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return req, nil, ittybit.Errorf(ittybit.ErrInvalidJSON, `the body is empty; send a JSON object such as {"input": "https://example.com/upload.mov", "kind": "video"}`)
	}
	var local [8]jsonobj.Member // a task request has 6 fields
	fields, ok := jsonobj.Members(local[:0], trimmed)
	if !ok {
		var m map[string]json.RawMessage
		err := json.Unmarshal(trimmed, &m)
		return req, nil, ittybit.Errorf(ittybit.ErrInvalidJSON, "the body is not a JSON object (%s); send {\"input\": …, \"kind\": …}", jsonErr(err))
	}
	var problems []*ittybit.Error
	bad := func(kind ittybit.ErrorKind, field, msg string) {
		problems = append(problems, &ittybit.Error{Kind: kind, Field: field, Message: msg})
	}
	for _, f := range fields {
		k, raw := f.Name, f.Raw
		isNull := string(bytes.TrimSpace(raw)) == "null"
		switch k {
		case "input":
			if !isNull && !jsonobj.String(raw, &req.Input) {
				bad(ittybit.ErrInvalidInput, "input", "input must be a URL string (http://, https://, or s3://)")
			}
		case "kind":
			var s string
			if !isNull && !jsonobj.String(raw, &s) {
				bad(ittybit.ErrInvalidKind, "kind", "kind must be a string, one of video, audio, image, adaptive_video")
			}
			req.Kind = encoders.Kind(s)
		case "options":
			// raw is valid JSON (jsonobj.Members checked the body): no
			// second check through json.Unmarshal.
			o, err := encoders.ReadOptions(raw) // shared: read, never changed
			if err != nil {
				bad(ittybit.ErrInvalidOption, "options", "options must be a JSON object")
			}
			req.Options = o
			if opts, err = encoders.OptionsJSON(raw); err != nil {
				opts = nil
			}
		case "output":
			if !isNull && !jsonobj.String(raw, &req.Output) {
				bad(ittybit.ErrInvalidOutput, "output", "output must be a string: an s3://bucket/key URL")
			}
		case "metadata":
			if isNull {
				continue
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				return req, nil, ittybit.Errorf(ittybit.ErrInvalidJSON, "metadata must be a JSON object of key-value pairs")
			}
			req.Metadata = canonical(m)
		case "priority":
			if !isNull && (!jsonobj.String(raw, &req.Priority) || !slices.Contains(api.Priorities(), req.Priority)) {
				bad(ittybit.ErrInvalidOption, "priority", "priority must be one of "+strings.Join(api.Priorities(), ", ")+" (default: the API key's, normal for the operator's)")
			}
		default:
			return req, nil, ittybit.Errorf(ittybit.ErrInvalidJSON, "unknown field %q; a task takes %s", k, strings.Join(requestFields, ", "))
		}
	}
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return req, nil, errors.Join(errs...)
	}
	return req, opts, nil
}

func jsonErr(err error) string {
	if err == nil {
		return "it is another JSON value"
	}
	return err.Error()
}

// canonical re-encodes an object with sorted keys and no spaces.
func canonical(m map[string]json.RawMessage) json.RawMessage {
	out, _ := json.Marshal(m) // maps marshal with sorted keys
	var buf bytes.Buffer
	if json.Compact(&buf, out) != nil {
		return out
	}
	return buf.Bytes()
}

// bodyHash identifies a request's content for Idempotency-Key checks:
// equal requests hash equal however their JSON was spaced or ordered
// (opts is the options as json.Marshal writes them).
func bodyHash(req api.CreateTaskRequest, opts []byte) string {
	var room [512]byte // most requests fit: no allocation
	b := appendHashPart(room[:0], req.Input)
	b = appendHashPart(b, req.Kind)
	b = appendHashPart(b, opts)
	b = appendHashPart(b, req.Output)
	b = appendHashPart(b, req.Metadata)
	if req.Priority != "" {
		// Only then: a request without one hashes as it always did.
		b = append(append(b, "priority:"...), req.Priority...)
	}
	sum := sha256.Sum256(b)
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:])
}

// appendHashPart appends one part of a body hash's input: its length in
// decimal, a colon, the part.
func appendHashPart[T ~string | ~[]byte](b []byte, part T) []byte {
	b = strconv.AppendInt(b, int64(len(part)), 10)
	return append(append(b, ':'), part...)
}
