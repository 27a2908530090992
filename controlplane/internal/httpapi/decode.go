package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// requestFields are the fields of a create request, in the seed's order.
var requestFields = []string{"input", "kind", "options", "output", "metadata", "priority"}

// decodeCreate reads a POST /tasks body. It fails only when the body is not
// a JSON object or a field has the wrong JSON type; option values are left
// to encoders.Validate, which reports every problem at once.
func decodeCreate(body []byte) (api.CreateTaskRequest, error) {
	var req api.CreateTaskRequest
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return req, ittybit.Errorf(ittybit.ErrInvalidJSON, `the body is empty; send a JSON object such as {"input": "https://example.com/upload.mov", "kind": "video"}`)
	}
	fields, ok := objectMembers(trimmed)
	if !ok {
		var m map[string]json.RawMessage
		err := json.Unmarshal(trimmed, &m)
		return req, ittybit.Errorf(ittybit.ErrInvalidJSON, "the body is not a JSON object (%s); send {\"input\": …, \"kind\": …}", jsonErr(err))
	}
	var problems []*ittybit.Error
	bad := func(kind ittybit.ErrorKind, field, msg string) {
		problems = append(problems, &ittybit.Error{Kind: kind, Field: field, Message: msg})
	}
	for _, f := range fields {
		k, raw := f.name, f.raw
		isNull := string(bytes.TrimSpace(raw)) == "null"
		switch k {
		case "input":
			if !isNull && !decodeString(raw, &req.Input) {
				bad(ittybit.ErrInvalidInput, "input", "input must be a URL string (http://, https://, or s3://)")
			}
		case "kind":
			var s string
			if !isNull && !decodeString(raw, &s) {
				bad(ittybit.ErrInvalidKind, "kind", "kind must be a string, one of video, audio, image, adaptive_video")
			}
			req.Kind = encoders.Kind(s)
		case "options":
			if err := json.Unmarshal(raw, &req.Options); err != nil {
				bad(ittybit.ErrInvalidOption, "options", "options must be a JSON object")
			}
		case "output":
			if !isNull && !decodeString(raw, &req.Output) {
				bad(ittybit.ErrInvalidOutput, "output", "output must be a string: an s3://bucket/key URL")
			}
		case "metadata":
			if isNull {
				continue
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				return req, ittybit.Errorf(ittybit.ErrInvalidJSON, "metadata must be a JSON object of key-value pairs")
			}
			req.Metadata = canonical(m)
		case "priority":
			if !isNull && (!decodeString(raw, &req.Priority) || !slices.Contains(api.Priorities(), req.Priority)) {
				bad(ittybit.ErrInvalidOption, "priority", "priority must be one of "+strings.Join(api.Priorities(), ", ")+" (default: the API key's, normal for the operator's)")
			}
		default:
			return req, ittybit.Errorf(ittybit.ErrInvalidJSON, "unknown field %q; a task takes %s", k, strings.Join(requestFields, ", "))
		}
	}
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return req, errors.Join(errs...)
	}
	return req, nil
}

// decodeString reads a JSON string into dst, as json.Unmarshal does; a
// plain one (no escapes, valid UTF-8: nearly every URL and name) is taken
// as it is, without the decoder's second scan and reflection.
func decodeString(raw json.RawMessage, dst *string) bool {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		body := raw[1 : n-1]
		plain := utf8.Valid(body)
		for _, c := range body {
			if c < 0x20 || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain {
			*dst = string(body)
			return true
		}
	}
	return json.Unmarshal(raw, dst) == nil
}

// member is one name and raw value of a JSON object.
type member struct {
	name string
	raw  json.RawMessage
}

// objectMembers splits a JSON object into its members, sorted by name,
// as json.Unmarshal into a map[string]json.RawMessage reads it (a later
// member of the same name wins; names unescaped), without the map and
// the decoder's second scan: once json.Valid has passed, the value
// boundaries need only strings and nesting to be followed. The values
// are slices of data. It reports false when data is not a JSON object.
func objectMembers(data []byte) ([]member, bool) {
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return nil, false
	}
	var out []member
	i := skipSpace(data, 1)
	if data[i] == '}' {
		return out, true
	}
	for {
		end := stringEnd(data, i)
		var name string
		if !decodeString(data[i:end], &name) {
			return nil, false
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past ':'
		vend := valueEnd(data, i)
		m := member{name: name, raw: data[i:vend:vend]}
		if k := slices.IndexFunc(out, func(o member) bool { return o.name == name }); k >= 0 {
			out[k] = m
		} else {
			out = append(out, m)
		}
		i = skipSpace(data, vend)
		if data[i] == '}' {
			break
		}
		i = skipSpace(data, i+1) // past ','
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.name, b.name) })
	return out, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at
// data[i] (a '"').
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at
// data[i], in valid JSON.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[i])) {
		i++
	}
	return i
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
	h := sha256.New()
	for _, part := range [][]byte{[]byte(req.Input), []byte(req.Kind), opts, []byte(req.Output), req.Metadata} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	if req.Priority != "" {
		// Only then: a request without one hashes as it always did.
		fmt.Fprintf(h, "priority:%s", req.Priority)
	}
	return hex.EncodeToString(h.Sum(nil))
}
