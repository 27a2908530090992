package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
)

// A node refuses to start on a damaged data folder, naming the file,
// rather than start on less than it had: hashicorp/raft skips a snapshot
// it cannot read and restores an older one, or none, and would then
// replay only the log that is left; a damaged log entry would stop the
// node part way through its replay. The others keep serving; the
// operator restores the folder or empties it (the node then rejoins and
// gets a snapshot from the leader).

// checkSnapshots checks every snapshot in dir against the checksum its
// meta.json records.
func checkSnapshots(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the snapshots in %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") { // .tmp: one being written, which Raft drops
			continue
		}
		if err := checkSnapshot(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func checkSnapshot(dir string) error {
	metaPath, statePath := filepath.Join(dir, "meta.json"), filepath.Join(dir, "state.bin")
	data, err := os.ReadFile(metaPath)
	if err != nil {
		return fmt.Errorf("snapshot %s cannot be read: %w", metaPath, err)
	}
	var meta struct {
		Index uint64
		CRC   []byte
	}
	if err := json.Unmarshal(data, &meta); err != nil || meta.Index == 0 || len(meta.CRC) == 0 {
		return fmt.Errorf("snapshot %s is damaged: it is not a snapshot's metadata (%v)", metaPath, err)
	}
	f, err := os.Open(statePath)
	if err != nil {
		return fmt.Errorf("snapshot %s cannot be read: %w", statePath, err)
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA)) // as raft.FileSnapshotStore sums it
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("snapshot %s cannot be read: %w", statePath, err)
	}
	if !bytes.Equal(h.Sum(nil), meta.CRC) {
		return fmt.Errorf("snapshot %s is damaged: its checksum is not the one %s records (truncated or changed)", statePath, metaPath)
	}
	return nil
}

// openBoltLog opens a raft-boltdb log (an earlier release's, to migrate)
// and reads every entry of it, checking that this release can apply it:
// a known type, a payload that decodes. Broken pages can make bolt panic
// or touch memory outside its map: both are caught and reported as
// damage, naming the file.
func openBoltLog(path string) (logs *raftboltdb.BoltStore, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("raft log %s is damaged: %v", path, p)
		}
	}()
	if err := checkBoltSize(path); err != nil {
		return nil, err
	}
	logs, err = raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	if err := checkLogEntries(path, logs); err != nil {
		logs.Close()
		return nil, err
	}
	return logs, nil
}

// checkBoltSize checks that a bolt file holds every page its metadata
// says it has: a file cut short may still open, its missing pages unread.
func checkBoltSize(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft log %s cannot be read: %w", path, err)
	}
	if st.Size() == 0 {
		return fmt.Errorf("raft log %s is damaged: it is empty", path)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", path, err)
	}
	defer db.Close()
	var size int64
	_ = db.View(func(tx *bbolt.Tx) error { size = tx.Size(); return nil })
	if st.Size() < size {
		return fmt.Errorf("raft log %s is damaged: it is %d bytes and its pages reach %d (cut short)", path, st.Size(), size)
	}
	return nil
}

// checkLogEntries reads every entry of logs (at path), checking that this
// release can apply it.
func checkLogEntries(path string, logs raft.LogStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft log %s cannot be read: %w", path, err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log %s cannot be read: %w", path, err)
	}
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return fmt.Errorf("raft log %s is damaged: entry %d: %w", path, i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if err := checkEntry(l.Data); err != nil {
			return fmt.Errorf("raft log %s: entry %d: %w", path, i, err)
		}
	}
	return nil
}

// checkEntry checks that an entry's payload decodes as its type's.
func checkEntry(data []byte) error {
	if len(data) == 0 {
		return errors.New("empty entry")
	}
	t, payload := commandType(data[0]), data[1:]
	switch {
	case t == cmdCreateBatch:
		if _, _, err := wire.ReadBatch(payload); err != nil {
			if errors.Is(err, wire.ErrNewer) {
				return fmt.Errorf("%s %w", t, err)
			}
			return fmt.Errorf("%s is damaged: %w", t, err)
		}
	case t >= cmdCreateTasks && t <= cmdAccessOps:
		if !json.Valid(payload) {
			return fmt.Errorf("%s is damaged: its JSON does not parse", t)
		}
	default:
		return fmt.Errorf("%s is from a newer release: upgrade this node", t)
	}
	return nil
}
