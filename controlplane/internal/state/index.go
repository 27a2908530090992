package state

import (
	"fmt"
)

// Typed memdb indexes for the tables written per task (tasks, events).
// memdb's field indexes find the field by name through reflection on
// every insert, and the FSM inserts a task on every step it moves; these
// read the field directly. Their keys are memdb's own encodings (a string
// and a NUL; a big-endian uint64), so the two kinds order and look up
// alike.

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
