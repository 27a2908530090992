package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
	"go.etcd.io/bbolt"
)

// The Raft log and stable store: hashicorp/raft-wal in <data>/wal, one
// append and one fsync per batch of entries, where raft-boltdb (the log
// of releases before it, <data>/raft.db) rewrote a B-tree's pages and
// synced twice. A folder that still has only raft.db is copied into a
// new wal/ once, on the first start of this release (migrateBoltLog),
// and raft.db is kept beside it as raft.db.migrated.
//
// raft-wal trusts what it committed: on opening, it reads its last
// segment up to the first frame that does not decode or check, and
// takes that as the end of a write cut short by a crash. Damage in the
// middle of the segment would quietly drop the entries after it, so
// checkWAL reads every segment first and refuses what a crash cannot
// leave: a segment shorter than it was made, a sealed one that does not
// reach its index, or a whole, checked batch after the point where
// reading stopped.

const (
	walDirName  = "wal"
	boltLogName = "raft.db"
)

// openLogStore opens the Raft log of the data folder dir, migrating a
// raft-boltdb log first, and checks every entry as openBoltLog does. New
// segments are segmentBytes long (0: raft-wal's default).
func openLogStore(dir string, segmentBytes int, logger hclog.Logger) (_ *markedLog, err error) {
	walDir := filepath.Join(dir, walDirName)
	switch _, err := os.Stat(walDir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := migrateBoltLog(dir, segmentBytes, logger); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("raft log %s cannot be read: %w", walDir, err)
	}
	if err := checkWAL(walDir); err != nil {
		return nil, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("raft log %s is damaged: %v", walDir, p)
		}
	}()
	wal, err := openWAL(walDir, segmentBytes, logger)
	if err != nil {
		return nil, fmt.Errorf("raft log %s is damaged: %w", walDir, err)
	}
	l := &markedLog{WAL: wal, path: filepath.Join(walDir, markName), stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.check(walDir); err != nil {
		wal.Close()
		return nil, err
	}
	if err := checkLogEntries(walDir, wal); err != nil {
		wal.Close()
		return nil, err
	}
	go l.markEvery(time.Second)
	return l, nil
}

// markName is the file in the log's folder that records how far the log
// is known to reach (markedLog).
const markName = "reaches"

// markedLog is raft-wal and a record, in a file of its own, of the last
// entry it is known to hold: written once a second while entries are
// appended (off the append path), and before the log's end is cut back
// (Raft replacing a follower's uncommitted entries, or deleting the
// whole log for a snapshot).
// A log that opens shorter than its record lost entries it had
// acknowledged, which raft-wal cannot tell from a write cut short by a
// crash when the damage runs to the end of what was written.
type markedLog struct {
	*raftwal.WAL
	path string

	// mu guards stored and gen, and is all an append takes; markMu
	// orders the record's writes (each two fsyncs) and guards marked, so
	// that appends never wait for them.
	mu     sync.Mutex
	stored uint64 // the last entry appended
	gen    uint64 // counts the log's ends cut back
	markMu sync.Mutex
	marked uint64 // the last recorded

	stop, done chan struct{}
	closeOnce  sync.Once
}

// check reads the record and compares it with the log.
func (l *markedLog) check(walDir string) error {
	last, err := l.WAL.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log %s cannot be read: %w", walDir, err)
	}
	l.stored, l.marked = last, last
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft log record %s cannot be read: %w", l.path, err)
	}
	mark, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return fmt.Errorf("raft log record %s is damaged: %q is not an entry's index", l.path, data)
	}
	if last < mark {
		segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
		slices.Sort(segs)
		where := walDir
		if len(segs) > 0 {
			where = segs[len(segs)-1]
		}
		return fmt.Errorf("raft log segment %s is damaged: the log ends at entry %d, and it held entries up to %d (%s records it)", where, last, mark, l.path)
	}
	return nil
}

func (l *markedLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

func (l *markedLog) StoreLogs(logs []*raft.Log) error {
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	if err := l.WAL.StoreLogs(logs); err != nil || len(logs) == 0 {
		return err
	}
	l.mu.Lock()
	if l.gen == gen { // else the end was cut back meanwhile: the next append records
		l.stored = max(l.stored, logs[len(logs)-1].Index)
	}
	l.mu.Unlock()
	return nil
}

func (l *markedLog) DeleteRange(min, max uint64) error {
	first, err := l.WAL.FirstIndex()
	if err != nil {
		return err
	}
	last, err := l.WAL.LastIndex()
	if err != nil {
		return err
	}
	if min > last || max < last || min > max {
		return l.WAL.DeleteRange(min, max) // the head, or nothing: the end stays
	}
	mark := min - 1
	if min <= first {
		mark = 0 // the whole log
	}
	l.markMu.Lock()
	defer l.markMu.Unlock()
	l.mu.Lock()
	l.gen++
	l.stored = mark
	l.mu.Unlock()
	if err := l.writeMark(mark); err != nil {
		return err
	}
	return l.WAL.DeleteRange(min, max)
}

// markEvery records the last entry stored every interval until Close.
func (l *markedLog) markEvery(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = l.markStored() // a failed write is tried again on the next tick
		}
	}
}

// markStored records the last entry stored, if the record lags; a failed
// write is tried again on the next call.
func (l *markedLog) markStored() error {
	l.markMu.Lock()
	defer l.markMu.Unlock()
	l.mu.Lock()
	stored := l.stored
	l.mu.Unlock()
	if stored == l.marked {
		return nil
	}
	return l.writeMark(stored)
}

// writeMark records mark durably; l.markMu is held.
func (l *markedLog) writeMark(mark uint64) error {
	if err := writeMarkFile(l.path, mark); err != nil {
		return err
	}
	l.marked = mark
	return nil
}

// writeMarkFile writes the record at path: written aside, synced, then
// renamed over the last.
func writeMarkFile(path string, mark uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record the raft log's end: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(mark, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("record the raft log's end: %w", err)
	}
	return nil
}

// Close records the last entry and closes the log.
func (l *markedLog) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		err = l.markStored()
		if cerr := l.WAL.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// migrateBoltLog makes dir/wal: empty, or, where dir/raft.db holds a log
// (an earlier release's), with its entries and Raft's term and vote. The
// copy is made in wal.tmp and renamed into place, so a crash part way
// leaves raft.db as it was and the next start copies again.
func migrateBoltLog(dir string, segmentBytes int, logger hclog.Logger) error {
	walDir := filepath.Join(dir, walDirName)
	boltPath := filepath.Join(dir, boltLogName)
	if _, err := os.Stat(boltPath); errors.Is(err, fs.ErrNotExist) {
		return os.Mkdir(walDir, 0o700)
	}
	old, err := openBoltLog(boltPath)
	if err != nil {
		return err
	}
	defer old.Close()
	tmp := walDir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	w, err := openWAL(tmp, segmentBytes, logger)
	if err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	ctx := context.Background()
	err = copyStable(w, old)
	last, lerr := old.LastIndex()
	if err == nil {
		err = lerr
	}
	if err == nil && last > 0 {
		err = migrate.CopyLogs(ctx, w, old, 1<<20, nil)
	}
	if err == nil {
		err = writeMarkFile(filepath.Join(tmp, markName), last)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("migrate raft log %s to %s: %w", boltPath, walDir, err)
	}
	if err := os.Rename(tmp, walDir); err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	if err := os.Rename(boltPath, boltPath+".migrated"); err != nil {
		return fmt.Errorf("migrate raft log %s: %w", boltPath, err)
	}
	logger.Warn("raft log migrated to raft-wal; the old log is kept as raft.db.migrated and is no longer read", "wal", walDir)
	return nil
}

// openWAL opens raft-wal in dir; segmentBytes 0 takes its default size.
func openWAL(dir string, segmentBytes int, logger hclog.Logger) (*raftwal.WAL, error) {
	return raftwal.Open(dir, raftwal.WithLogger(logger), raftwal.WithSegmentSize(segmentBytes))
}

// copyStable copies the keys hashicorp/raft keeps in its stable store
// (its term and vote), those that are there: a node that never voted has
// no vote to copy.
func copyStable(dst, src raft.StableStore) error {
	for _, k := range []string{"CurrentTerm", "LastVoteTerm"} {
		v, err := src.GetUint64([]byte(k))
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			continue
		}
		if err == nil {
			err = dst.SetUint64([]byte(k), v)
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", k, err)
		}
	}
	v, err := src.Get([]byte("LastVoteCand"))
	if errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return nil
	}
	if err == nil {
		err = dst.Set([]byte("LastVoteCand"), v)
	}
	if err != nil {
		return fmt.Errorf("copy LastVoteCand: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkWAL checks the log in walDir before raft-wal opens it: its
// metadata, and every segment that metadata lists.
func checkWAL(walDir string) (err error) {
	metaPath := filepath.Join(walDir, metadb.FileName)
	if _, err := os.Stat(metaPath); errors.Is(err, fs.ErrNotExist) {
		segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
		if len(segs) > 0 {
			return fmt.Errorf("raft log %s is damaged: its segments are there but not %s", walDir, metaPath)
		}
		return nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("raft log %s is damaged: %v", metaPath, p)
		}
	}()
	if err := checkBoltSize(metaPath); err != nil {
		return err
	}
	db, err := bbolt.Open(metaPath, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("raft log %s cannot be opened: %w", metaPath, err)
	}
	var raw []byte
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(metadb.MetaBucket))
		if b == nil {
			return errors.New("it has no bucket " + metadb.MetaBucket)
		}
		raw = bytes.Clone(b.Get([]byte(metadb.MetaKey)))
		return nil
	})
	db.Close()
	if err != nil {
		return fmt.Errorf("raft log %s is damaged: %w", metaPath, err)
	}
	if raw == nil { // made, never written: no segment yet
		return nil
	}
	var st types.PersistentState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("raft log %s is damaged: its segment list does not parse: %w", metaPath, err)
	}
	for i, si := range st.Segments {
		tail := i == len(st.Segments)-1 && si.SealTime.IsZero()
		if err := checkSegment(filepath.Join(walDir, segment.FileName(si)), si, tail); err != nil {
			return err
		}
	}
	return nil
}

// raft-wal's segment format (package segment): a 32-byte header, then
// frames of an 8-byte header (type; for an entry or the index its length,
// for a commit the CRC-32C of every byte since the previous commit, or
// since the start of the file) and the payload, padded to 8 bytes.
const (
	segHeaderLen   = 32
	segMagic       = 0x58eb6b0d
	frameHeaderLen = 8
	frameEntry     = 1
	frameIndex     = 2
	frameCommit    = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkSegment reads one segment file whole. tail says it is the one
// still written to; every other is sealed.
func checkSegment(path string, si types.SegmentInfo, tail bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("raft log segment %s cannot be read: %w", path, err)
	}
	damaged := func(format string, a ...any) error {
		return fmt.Errorf("raft log segment %s is damaged: %s", path, fmt.Sprintf(format, a...))
	}
	if si.SizeLimit > 0 && uint64(len(data)) < uint64(si.SizeLimit) {
		return damaged("it is %d bytes and was made %d (cut short)", len(data), si.SizeLimit)
	}
	// Read frames while they decode and each batch's commit checks.
	var (
		end       = 0 // just after the last commit that checks
		entries   = 0 // entries before it
		indexAt   = -1
		batchFrom = 0 // where the batch being read began
		pending   = 0 // entries of that batch
		pendIndex = -1
	)
	for off := segHeaderLen; off+frameHeaderLen <= len(data); {
		typ, n := data[off], binary.LittleEndian.Uint32(data[off+4:])
		if typ < frameEntry || typ > frameCommit || data[off+1]|data[off+2]|data[off+3] != 0 {
			break // zeros past the end, or the tail of a write cut short
		}
		if typ == frameCommit {
			if crc32.Checksum(data[batchFrom:off], castagnoli) != n {
				break
			}
			off += frameHeaderLen
			end, batchFrom = off, off
			entries += pending
			if pendIndex >= 0 {
				indexAt = pendIndex
			}
			pending, pendIndex = 0, -1
			continue
		}
		size := frameHeaderLen + int(n) + (frameHeaderLen-int(n)%frameHeaderLen)%frameHeaderLen
		if n > segment.MaxEntrySize+frameHeaderLen || off+size > len(data) {
			break
		}
		if typ == frameEntry {
			pending++
		} else {
			pendIndex = off + frameHeaderLen
		}
		off += size
	}
	if end > 0 {
		base, id, codec := binary.LittleEndian.Uint64(data[8:]), binary.LittleEndian.Uint64(data[16:]), binary.LittleEndian.Uint64(data[24:])
		if binary.LittleEndian.Uint32(data) != segMagic || base != si.BaseIndex || id != si.ID || codec != si.Codec {
			return damaged("its header is not the one its metadata records")
		}
	}
	if !tail {
		if indexAt < 0 || uint64(indexAt) != si.IndexStart {
			return damaged("it is sealed, and its index at byte %d cannot be read up to (read to byte %d)", si.IndexStart, end)
		}
		if si.MaxIndex >= si.BaseIndex && uint64(entries) < si.MaxIndex-si.BaseIndex+1 {
			return damaged("it holds %d entries from %d, and its metadata says it reaches %d", entries, si.BaseIndex, si.MaxIndex)
		}
	}
	// A crash leaves at most the one batch it was writing, whose commit
	// cannot check. A whole batch after the point reading stopped is one
	// the node wrote and acknowledged: what came before it is damaged.
	var commits []int
	for q := end + (frameHeaderLen-end%frameHeaderLen)%frameHeaderLen; q+frameHeaderLen <= len(data); q += frameHeaderLen {
		if data[q] == frameCommit && data[q+1]|data[q+2]|data[q+3] == 0 {
			commits = append(commits, q)
		}
	}
	for j, c := range commits {
		want := binary.LittleEndian.Uint32(data[c+4:])
		froms := []int{end}
		for k := max(0, j-3); k < j; k++ {
			froms = append(froms, commits[k]+frameHeaderLen)
		}
		for _, from := range froms {
			if from < c && crc32.Checksum(data[from:c], castagnoli) == want {
				return damaged("reading stops at byte %d, and a whole batch of entries follows at bytes %d–%d", end, from, c+frameHeaderLen)
			}
		}
	}
	return nil
}
