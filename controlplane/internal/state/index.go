package state

import (
	"encoding/binary"
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
