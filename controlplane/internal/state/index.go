package state

import (
	"encoding/binary"
	"fmt"
)

// Typed memdb indexes for the tables written per task (tasks, request
// keys, events). memdb's field indexes find the field by name through
// reflection on every insert, and the FSM inserts a task on every step it
// moves; these read the field directly. Their keys are memdb's own
// encodings (a string and a NUL; a big-endian uint64), so the two kinds
// order and look up alike.

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

// pairIndex indexes two string fields together (the requests table: a
// scope and a key), as memdb's compound index of two string fields does:
// each value and a NUL.
type pairIndex[T any] struct{ fields func(*T) (string, string) }

// FromObject implements memdb.SingleIndexer.
func (ix pairIndex[T]) FromObject(obj any) (bool, []byte, error) {
	t, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index of %T given %T", t, obj)
	}
	a, b := ix.fields(t)
	return true, pairKey(a, b), nil
}

// FromArgs implements memdb.Indexer: two strings.
func (ix pairIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want two arguments, got %d", len(args))
	}
	a, ok1 := args[0].(string)
	b, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("want two strings, got %T and %T", args[0], args[1])
	}
	return pairKey(a, b), nil
}

func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+len(b)+2)
	k = append(append(k, a...), 0)
	return append(append(k, b...), 0)
}

// taskStringIndex indexes the tasks table, whose values are live tasks or
// frozen ones (cold.go).
type taskStringIndex struct{ field func(raw any) string }

// FromObject implements memdb.SingleIndexer.
func (ix taskStringIndex) FromObject(obj any) (bool, []byte, error) {
	v := ix.field(obj)
	if v == "" {
		return false, nil, nil
	}
	return true, append([]byte(v), 0), nil
}

// FromArgs implements memdb.Indexer: one string.
func (ix taskStringIndex) FromArgs(args ...any) ([]byte, error) {
	return stringIndex[Task]{}.FromArgs(args...)
}

// uintIndex indexes a uint64 field.
type uintIndex[T any] struct{ field func(*T) uint64 }

// FromObject implements memdb.SingleIndexer.
func (ix uintIndex[T]) FromObject(obj any) (bool, []byte, error) {
	t, ok := obj.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index of %T given %T", t, obj)
	}
	return true, binary.BigEndian.AppendUint64(nil, ix.field(t)), nil
}

// FromArgs implements memdb.Indexer: one uint64.
func (ix uintIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	v, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("want a uint64, got %T", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, v), nil
}
