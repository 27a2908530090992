package encoders

import "sync"

// memo holds the options read from the JSON texts seen lately, and what
// AppendJSON writes for them. Tasks come in runs with the same options
// (one preset, many inputs): reading and writing them back cost a server
// about 15 allocations a request, and decoding the seeds' options again
// on every node for every task was a tenth of a create's cost in the
// state machine.
var memo = struct {
	sync.Mutex
	m map[string]*memoEntry
}{m: map[string]*memoEntry{}}

// memoEntry is one JSON text's options as read (err: UnmarshalJSON's)
// and as written back (json: AppendJSON's, jsonErr its error; nil until
// first asked for).
type memoEntry struct {
	o       Options
	err     error
	json    []byte
	jsonErr error
}

// memoSize bounds the memo; when full it starts again.
const memoSize = 256

// memoFor returns raw's entry, read when absent. The caller holds memo.
func memoFor(raw []byte) *memoEntry {
	if e, ok := memo.m[string(raw)]; ok {
		return e
	}
	e := &memoEntry{}
	e.err = e.o.UnmarshalJSON(raw)
	if len(memo.m) >= memoSize {
		clear(memo.m)
	}
	memo.m[string(raw)] = e
	return e
}

// ReadOptions returns what Options.UnmarshalJSON reads from raw, through
// the memo. The options are shared with every caller of the same text:
// read them, never change what their pointers hold (Validate does not);
// Clone makes a copy of one's own.
func ReadOptions(raw []byte) (Options, error) {
	memo.Lock()
	defer memo.Unlock()
	e := memoFor(raw)
	return e.o, e.err
}

// OptionsJSON returns what AppendJSON writes for the options raw reads
// as, through the memo: bytes shared with every caller, never to change
// (their capacity is their length, so an append copies them).
func OptionsJSON(raw []byte) ([]byte, error) {
	memo.Lock()
	defer memo.Unlock()
	e := memoFor(raw)
	if e.json == nil && e.jsonErr == nil {
		b, err := e.o.AppendJSON(nil)
		e.json, e.jsonErr = b[:len(b):len(b)], err
	}
	return e.json, e.jsonErr
}
