// Package jsonobj reads JSON objects of small, known shapes (a task's
// request, its options) as encoding/json reads them into a
// map[string]json.RawMessage and strings, without the map, the
// reflection and the decoder's second scan: the hot path of every
// POST /tasks. Its fuzz tests hold it to encoding/json.
package jsonobj

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// String reads a JSON string into dst, as json.Unmarshal does; a
// plain one (no escapes, valid UTF-8: nearly every URL and name) is taken
// as it is, without the decoder's second scan and reflection.
func String(raw json.RawMessage, dst *string) bool {
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
	// The decoder's own string, not dst: handing dst to json.Unmarshal
	// would move every caller's variable to the heap, for the rare
	// escaped string. (null leaves dst as it was, as it would.)
	s := *dst
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	*dst = s
	return true
}

// Member is one name and raw value of a JSON object.
type Member struct {
	Name string
	Raw  json.RawMessage
}

// Members splits a JSON object into its members, sorted by name,
// as json.Unmarshal into a map[string]json.RawMessage reads it (a later
// member of the same name wins; names unescaped), without the map and
// the decoder's second scan: once json.Valid has passed, the value
// boundaries need only strings and nesting to be followed. The values
// are slices of data. It reports false when data is not a JSON object.
// The members are appended to dst[:0]: a caller's array on its stack
// spares the allocation.
func Members(dst []Member, data []byte) ([]Member, bool) {
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return nil, false
	}
	out := dst[:0]
	i := skipSpace(data, 1)
	if data[i] == '}' {
		return out, true
	}
	for {
		end := stringEnd(data, i)
		var name string
		if !String(data[i:end], &name) {
			return nil, false
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past ':'
		vend := valueEnd(data, i)
		m := Member{Name: name, Raw: data[i:vend:vend]}
		if k := slices.IndexFunc(out, func(o Member) bool { return o.Name == name }); k >= 0 {
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
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
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
