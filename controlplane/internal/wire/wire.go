// Package wire is the binary form of new tasks: in the Raft log (the
// create_batch entry) and between servers (a follower's creates, batched
// to the leader). A task is a seed (state.Seed: its ids and time, stamped
// by the leader, and the request as validated) with its request key.
//
// The form is protobuf's wire format (varints and length-delimited
// fields, through google.golang.org/protobuf/encoding/protowire), written
// and read by hand: field numbers are never reused, a reader skips the
// fields it does not know, and each message starts with a version byte
// that a reader refuses when it is newer than it knows, so that no node
// applies an entry it would misread.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// Version is the version byte this release writes and the newest it
// reads.
const Version = 1

// Field numbers of a seed request.
const (
	fID       protowire.Number = 1
	fStepID   protowire.Number = 2 // repeated
	fAt       protowire.Number = 3
	fKind     protowire.Number = 4
	fInput    protowire.Number = 5
	fOutput   protowire.Number = 6
	fOptions  protowire.Number = 7 // the options' JSON, as validated
	fMetadata protowire.Number = 8 // the metadata's JSON, as received
	fScope    protowire.Number = 9
	fKey      protowire.Number = 10
	fBodyHash protowire.Number = 11
	// fProject is the project of the key that asked for the task, absent
	// for the operator's keys. Added with log entry type 15 (access_ops):
	// a project exists only once every voter applies that type, so no
	// node that would skip this field ever meets it.
	fProject protowire.Number = 12
	// fPriority is the task's priority, absent for normal; added with
	// fProject.
	fPriority protowire.Number = 13
)

// Field numbers of a batch: creates (the log entry) or a follower's
// requests.
const (
	fNow     protowire.Number = 1
	fRequest protowire.Number = 2 // repeated, each a seed request
)

// Field numbers of one result of a follower's batch.
const (
	fStatus protowire.Number = 1
	// fID, fStepID and fAt as in a seed: what the leader stamped.
	fTask protowire.Number = 5 // a replayed task's JSON
)

// ErrNewer is a message written by a newer release than this one.
var ErrNewer = errors.New("written by a newer release: upgrade this node")

// AppendBatch appends the versioned form of a batch of seed requests,
// stamped at now (epoch ms; 0 for a follower's unstamped requests).
func AppendBatch(b []byte, now int64, reqs []state.SeedRequest) []byte {
	size := len(b) + 12
	for i := range reqs {
		size += seedRequestSize(&reqs[i]) + 3
	}
	b = slices.Grow(b, size-len(b))
	b = append(b, Version)
	b = appendVarint(b, fNow, uint64(now))
	var m []byte
	for i := range reqs {
		m = appendSeedRequest(m[:0], &reqs[i])
		b = protowire.AppendTag(b, fRequest, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// ReadBatch reads what AppendBatch wrote.
func ReadBatch(b []byte) (now int64, reqs []state.SeedRequest, err error) {
	b, err = version(b)
	if err != nil {
		return 0, nil, err
	}
	count := 0
	_ = fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, _ []byte) error {
		if num == fRequest && typ == protowire.BytesType {
			count++
		}
		return nil
	})
	reqs = make([]state.SeedRequest, 0, count)
	err = fields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch {
		case num == fNow && typ == protowire.VarintType:
			now = int64(v)
		case num == fRequest && typ == protowire.BytesType:
			var r state.SeedRequest
			if err := readSeedRequest(data, &r); err != nil {
				return fmt.Errorf("request %d: %w", len(reqs), err)
			}
			reqs = append(reqs, r)
		}
		return nil
	})
	return now, reqs, err
}

// seedRequestSize bounds the size of a seed request's form: its fields'
// bytes and a tag and length (at most 4 bytes: a field under 2 MiB) each.
func seedRequestSize(r *state.SeedRequest) int {
	s := &r.Seed
	n := len(s.ID) + len(s.Kind) + len(s.Input) + len(s.Output) + len(s.Options) + len(s.Metadata) +
		len(r.Scope) + len(r.Key) + len(r.BodyHash) + len(s.Project) + len(s.Priority) + 8*5 + 13
	for _, id := range s.StepIDs {
		n += len(id) + 5
	}
	return n
}

func appendSeedRequest(b []byte, r *state.SeedRequest) []byte {
	s := &r.Seed
	b = appendString(b, fID, s.ID)
	b = appendStrings(b, fStepID, s.StepIDs)
	b = appendVarint(b, fAt, uint64(s.At))
	b = appendString(b, fKind, string(s.Kind))
	b = appendString(b, fInput, s.Input)
	b = appendString(b, fOutput, s.Output)
	b = appendBytes(b, fOptions, s.Options)
	b = appendBytes(b, fMetadata, s.Metadata)
	b = appendString(b, fScope, r.Scope)
	b = appendString(b, fKey, r.Key)
	b = appendString(b, fBodyHash, r.BodyHash)
	b = appendString(b, fProject, s.Project)
	return appendString(b, fPriority, s.Priority)
}

// readSeedRequest reads one seed request. Its strings are cut from two
// strings made for them: the seed's (kept with the task) and the request
// key's (kept as long as the key is remembered, which may be longer);
// its options and metadata from one byte slice. A task read from a
// create entry costs three allocations and its step ids' slice, where
// a string each cost twelve: on every node, for every task.
func readSeedRequest(b []byte, r *state.SeedRequest) error {
	// The fields, in order, read once; a task has 13 or so.
	type field struct {
		num  protowire.Number
		v    uint64
		data []byte
	}
	var local [24]field
	fs := local[:0]
	var seedLen, keyLen, rawLen, steps int
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		if typ == protowire.VarintType {
			if num == fAt {
				fs = append(fs, field{num: num, v: v})
			}
			return nil
		}
		switch num {
		case fStepID:
			steps++
			seedLen += len(data)
		case fID, fKind, fInput, fOutput, fProject, fPriority:
			seedLen += len(data)
		case fScope, fKey, fBodyHash:
			keyLen += len(data)
		case fOptions, fMetadata:
			rawLen += len(data)
		default:
			return nil
		}
		fs = append(fs, field{num: num, data: data})
		return nil
	})
	if err != nil {
		return err
	}
	var seedStr, keyStr strings.Builder
	seedStr.Grow(seedLen)
	keyStr.Grow(keyLen)
	for _, f := range fs {
		switch f.num {
		case fID, fStepID, fKind, fInput, fOutput, fProject, fPriority:
			seedStr.Write(f.data)
		case fScope, fKey, fBodyHash:
			keyStr.Write(f.data)
		}
	}
	seedAll, keyAll := seedStr.String(), keyStr.String()
	var raw []byte
	if rawLen > 0 {
		raw = make([]byte, 0, rawLen)
	}
	s := &r.Seed
	if steps > 0 {
		s.StepIDs = make([]string, 0, steps)
	}
	cut := func(all *string, n int) string {
		v := (*all)[:n]
		*all = (*all)[n:]
		return v
	}
	for _, f := range fs {
		n := len(f.data)
		switch f.num {
		case fAt:
			s.At = int64(f.v)
		case fID:
			s.ID = cut(&seedAll, n)
		case fStepID:
			s.StepIDs = append(s.StepIDs, cut(&seedAll, n))
		case fKind:
			s.Kind = encoders.Kind(cut(&seedAll, n))
		case fInput:
			s.Input = cut(&seedAll, n)
		case fOutput:
			s.Output = cut(&seedAll, n)
		case fProject:
			s.Project = cut(&seedAll, n)
		case fPriority:
			s.Priority = cut(&seedAll, n)
		case fScope:
			r.Scope = cut(&keyAll, n)
		case fKey:
			r.Key = cut(&keyAll, n)
		case fBodyHash:
			r.BodyHash = cut(&keyAll, n)
		case fOptions:
			s.Options = appendRaw(&raw, f.data)
		case fMetadata:
			s.Metadata = appendRaw(&raw, f.data)
		}
	}
	return nil
}

// appendRaw copies data to the end of *raw, which has room for it, and
// returns the copy (nil for none), capped so that appending to it cannot
// write over what follows.
func appendRaw(raw *[]byte, data []byte) []byte {
	if len(data) == 0 {
		return nil
	}
	start := len(*raw)
	*raw = append(*raw, data...)
	return (*raw)[start:len(*raw):len(*raw)]
}

// Status is what became of one of a follower's requests.
type Status uint8

// The outcomes of a follower's request.
const (
	// Created: a new task, with the ids and time the leader stamped.
	Created Status = 0
	// Replayed: the request key was seen before; Task is the task now.
	Replayed Status = 1
	// Conflict: the Idempotency-Key was used with another request.
	Conflict Status = 2
)

// Result is the leader's answer to one request of a follower's batch.
type Result struct {
	Status  Status
	ID      string
	StepIDs []string
	At      int64
	// Task is the replayed task's JSON.
	Task []byte
}

// AppendResults appends the versioned form of results.
func AppendResults(b []byte, results []Result) []byte {
	size := 1
	for i := range results {
		size += resultSize(&results[i])
	}
	b = slices.Grow(b, size)
	b = append(b, Version)
	m := make([]byte, 0, 256) // one result at a time: its ids and time fit
	for i := range results {
		r := &results[i]
		m = appendVarint(m[:0], fStatus, uint64(r.Status))
		m = appendString(m, fID, r.ID)
		m = appendStrings(m, fStepID, r.StepIDs)
		m = appendVarint(m, fAt, uint64(r.At))
		m = appendBytes(m, fTask, r.Task)
		b = protowire.AppendTag(b, fRequest, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// resultSize bounds the size of a result's form in a batch's answer: a
// one-byte tag each (fields under 16), a varint's most bytes, and a
// length's (of a field under 4 GiB).
func resultSize(r *Result) int {
	const tagLen = 1 + binary.MaxVarintLen32
	n := 2 + 1 + binary.MaxVarintLen64 + tagLen + len(r.ID) + tagLen + len(r.Task) // status, at, id, task
	for _, s := range r.StepIDs {
		n += tagLen + len(s)
	}
	return tagLen + n // the result's own tag and length
}

// ReadResults reads what AppendResults wrote.
func ReadResults(b []byte) ([]Result, error) {
	b, err := version(b)
	if err != nil {
		return nil, err
	}
	var out []Result
	err = fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		if num != fRequest || typ != protowire.BytesType {
			return nil
		}
		var r Result
		err := fields(data, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
			switch {
			case num == fStatus && typ == protowire.VarintType:
				r.Status = Status(v)
			case num == fAt && typ == protowire.VarintType:
				r.At = int64(v)
			case num == fID && typ == protowire.BytesType:
				r.ID = string(data)
			case num == fStepID && typ == protowire.BytesType:
				r.StepIDs = append(r.StepIDs, string(data))
			case num == fTask && typ == protowire.BytesType:
				r.Task = append([]byte(nil), data...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if r.Status > Conflict {
			return fmt.Errorf("result %d: status %d: %w", len(out), r.Status, ErrNewer)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// version checks and strips the version byte.
func version(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty message")
	}
	if b[0] == 0 || b[0] > Version {
		return nil, fmt.Errorf("version %d: %w", b[0], ErrNewer)
	}
	return b[1:], nil
}

// fields calls fn for each field of a message: varints with their value,
// length-delimited fields with their bytes (which alias b); fields of
// other wire types are skipped.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := fn(num, typ, v, data); err != nil {
				return err
			}
		}
	}
	return nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendStrings appends a repeated string field.
func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// appendVarint appends a varint field, unless it is 0 (a reader's default).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
