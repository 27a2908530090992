// Package state is the control plane's deterministic state, kept in
// go-memdb: tasks (with their steps), request keys for idempotency and
// deduplication, and the control-plane servers. Every mutation is a method
// that the Raft FSM calls with values the leader stamped before proposing
// (ids, times), so that applying the same log on every node gives the same
// state: no clock, randomness or I/O here.
package state
