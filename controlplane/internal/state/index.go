package state

import (
	"fmt"
)

// A typed memdb index. memdb's field indexes find the field by name
// through reflection on every insert; this reads the field directly. Its
// keys are memdb's own encoding of a string (the string and a NUL), so it
// orders and looks up as they do.

// stringIndex indexes a string field; an empty value is not indexed.
type stringIndex[T any] struct{ field func(*T) string }

// FromObject implements memdb.SingleIndexer.
func (ix stringIndex[T]) FromObject(obj any) (bool, []byte, error) {
	t, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index of %T given %T", t, obj)
	}
	v := ix.field(t)
	if v == "" {
		return false, nil, nil
	}
	return true, append([]byte(v), 0), nil
}

// FromArgs implements memdb.Indexer: one string.
func (ix stringIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("want a string, got %T", args[0])
	}
	return append([]byte(s), 0), nil
}
