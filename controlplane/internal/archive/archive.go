// Package archive keeps retired tasks in managed storage, where every
// server reads them: gzip'd JSON lines, one object per retirement batch and
// day of creation,
//
//	archive/tasks/2026-12-01/<first id>_<last id>.jsonl.gz
//
// (task ids are ULIDs, so sorting by id sorts by creation, and the day a
// task was created is read from its id). The leader writes a batch before
// it proposes the entry that drops those tasks from the replicated state
// (nothing retires that is not archived); a batch archived twice (the
// leader changed between the write and the entry) names the same object
// or repeats tasks that readers then see once.
package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/storage"
)

// Prefix is where the archive lives in managed storage.
const Prefix = "archive/tasks"

// ErrNotFound is the error of a task the archive does not hold.
var ErrNotFound = errors.New("not in the archive")

// Archive writes and reads retired tasks.
type Archive struct {
	store storage.Managed
	// tmp holds objects on their way in and out.
	tmp string

	mu    sync.Mutex
	cache []*object // most recently used last
	// days caches each day's object names: objects never change once
	// written, and a lookup that finds no object for its id lists the day
	// again.
	days map[string][]string
}

// cacheDays bounds the days whose object names are cached.
const cacheDays = 64

// cacheBytes bounds the objects kept decoded: a list pages through one or
// two at a time, and lookups by id cluster in time.
const cacheBytes = 32 << 20

// New returns the archive in store; tmp is a folder for staging files.
func New(store storage.Managed, tmp string) *Archive {
	return &Archive{store: store, tmp: tmp}
}

// object is one archived batch, decoded.
type object struct {
	key   string
	tasks []entry // by id
	size  int     // bytes of JSON
}

// entry is one archived task: what lists filter on, and its JSON.
type entry struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	// Project is the task's ("" for the operator's keys).
	Project string `json:"project"`
	json    []byte
}

// Write archives tasks: one object per day they were created. It returns
// only once every object is stored.
func (a *Archive) Write(ctx context.Context, tasks []state.Retiree) error {
	days := map[string][]state.Retiree{}
	for _, t := range tasks {
		d := day(t.CreatedAt)
		days[d] = append(days[d], t)
	}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		batch := days[d]
		sort.Slice(batch, func(i, j int) bool { return batch[i].ID < batch[j].ID })
		key := fmt.Sprintf("%s/%s/%s_%s.jsonl.gz", Prefix, d, idPart(batch[0].ID), idPart(batch[len(batch)-1].ID))
		if err := a.put(ctx, key, batch); err != nil {
			return err
		}
	}
	return nil
}

// put writes one object through a staged file.
func (a *Archive) put(ctx context.Context, key string, batch []state.Retiree) error {
	f, err := os.CreateTemp(a.tmp, "archive-*.jsonl.gz")
	if err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<16)
	// The fastest level: an archive is written once and rarely read, and
	// the leader's time is what retirement must spare (measured on 1,000
	// tasks: half the default level's time, for a quarter more bytes).
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	for _, t := range batch {
		zw.Write(t.JSON)
		zw.Write([]byte("\n"))
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	return a.store.Put(ctx, key, f.Name())
}

// Task returns the archived task's JSON, or ErrNotFound.
func (a *Archive) Task(ctx context.Context, id string) ([]byte, error) {
	created, ok := createdAt(id)
	if !ok {
		return nil, ErrNotFound
	}
	d := day(created)
	a.mu.Lock()
	keys, cached := a.days[d]
	a.mu.Unlock()
	for {
		if !cached {
			var err error
			if keys, err = a.store.List(ctx, Prefix+"/"+d); err != nil {
				return nil, err
			}
			a.mu.Lock()
			if a.days == nil || len(a.days) >= cacheDays {
				a.days = map[string][]string{}
			}
			a.days[d] = keys
			a.mu.Unlock()
		}
		data, err := a.find(ctx, d, keys, id)
		if err != ErrNotFound || !cached {
			return data, err
		}
		cached = false // written since the day was listed?
	}
}

// find looks for a task in the objects of its day whose ranges hold it.
func (a *Archive) find(ctx context.Context, d string, keys []string, id string) ([]byte, error) {
	want := idPart(id)
	for _, k := range keys {
		first, last, ok := objectRange(k)
		if !ok || want < first || want > last {
			continue
		}
		o, err := a.object(ctx, Prefix+"/"+d+"/"+k)
		if err != nil {
			return nil, err
		}
		i := sort.Search(len(o.tasks), func(i int) bool { return o.tasks[i].ID >= id })
		if i < len(o.tasks) && o.tasks[i].ID == id {
			return o.tasks[i].json, nil
		}
	}
	return nil, ErrNotFound
}

// Query selects a page of archived tasks, newest first unless Asc. After
// and Before are task ids; Kind and Status filter when set.
type Query struct {
	Limit         int
	Asc           bool
	After, Before string
	Kind, Status  string
	// Project, when set, lists only that project's tasks.
	Project string
}

// List returns one page of archived tasks in the query's order and whether
// more follow in the direction of travel. Objects are read in the order of
// their ranges of ids, and only while one could still hold a task of the
// page: retirement follows creation closely, so a page reads one or two.
// A task archived twice (by two leaders) is listed once.
func (a *Archive) List(ctx context.Context, q Query) ([][]byte, bool, error) {
	keys, err := a.store.List(ctx, Prefix)
	if err != nil {
		return nil, false, err
	}
	// Walk towards newer tasks (asc after a cursor, desc before one) or
	// older ones.
	newer := q.Asc
	cursor := q.After
	if q.Before != "" {
		cursor, newer = q.Before, !newer
	}
	before := func(x, y string) bool { // x comes before y in the walk
		if newer {
			return x < y
		}
		return x > y
	}
	type span struct{ key, near, far string }
	var spans []span
	for _, k := range keys {
		_, name, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		first, last, ok := objectRange(name)
		if !ok {
			continue
		}
		sp := span{k, "task_" + last, "task_" + first}
		if newer {
			sp.near, sp.far = sp.far, sp.near
		}
		if cursor != "" && !before(cursor, sp.far) {
			continue // nothing past the cursor
		}
		spans = append(spans, sp)
	}
	sort.Slice(spans, func(i, j int) bool { return before(spans[i].near, spans[j].near) })
	var found []entry // the page and one more, in walk order
	seen := map[string]bool{}
	for _, sp := range spans {
		if len(found) > q.Limit && !before(sp.near, found[len(found)-1].ID) {
			break // this object and every later one start past the page
		}
		o, err := a.object(ctx, Prefix+"/"+sp.key)
		if err != nil {
			return nil, false, err
		}
		for _, t := range o.tasks {
			if seen[t.ID] || (cursor != "" && !before(cursor, t.ID)) {
				continue
			}
			if (q.Kind != "" && t.Kind != q.Kind) || (q.Status != "" && t.Status != q.Status) || (q.Project != "" && t.Project != q.Project) {
				continue
			}
			seen[t.ID] = true
			found = append(found, t)
		}
		sort.Slice(found, func(i, j int) bool { return before(found[i].ID, found[j].ID) })
		if len(found) > q.Limit+1 {
			for _, t := range found[q.Limit+1:] {
				delete(seen, t.ID)
			}
			found = found[:q.Limit+1]
		}
	}
	more := len(found) > q.Limit
	found = found[:min(len(found), q.Limit)]
	if q.Before != "" {
		slices.Reverse(found) // walked away from the cursor backwards
	}
	out := make([][]byte, len(found))
	for i, t := range found {
		out[i] = t.json
	}
	return out, more, nil
}

// object reads an object, from the cache when it is there.
func (a *Archive) object(ctx context.Context, key string) (*object, error) {
	a.mu.Lock()
	for i, o := range a.cache {
		if o.key == key {
			a.cache = append(append(a.cache[:i:i], a.cache[i+1:]...), o)
			a.mu.Unlock()
			return o, nil
		}
	}
	a.mu.Unlock()
	o, err := a.read(ctx, key)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cache = append(a.cache, o)
	total := 0
	for _, c := range a.cache {
		total += c.size
	}
	for total > cacheBytes && len(a.cache) > 1 {
		total -= a.cache[0].size
		a.cache = a.cache[1:]
	}
	a.mu.Unlock()
	return o, nil
}

// read fetches and decodes an object.
func (a *Archive) read(ctx context.Context, key string) (*object, error) {
	f, err := a.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", key, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", key, err)
	}
	o := &object{key: key, size: len(data)}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("archive %s: %w", key, err)
		}
		e.json = line
		o.tasks = append(o.tasks, e)
	}
	sort.SliceStable(o.tasks, func(i, j int) bool { return o.tasks[i].ID < o.tasks[j].ID })
	return o, nil
}

// day is the UTC day of an epoch ms time, as the archive names it.
func day(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.DateOnly) }

// idPart is a task id without its "task_" prefix.
func idPart(id string) string { return strings.TrimPrefix(id, "task_") }

// createdAt reads when a task was created from its id (a ULID).
func createdAt(id string) (int64, bool) {
	u, err := ulid.ParseStrict(strings.ToUpper(idPart(id)))
	if err != nil {
		return 0, false
	}
	return int64(u.Time()), true
}

// objectRange reads the first and last id parts an object's name holds.
func objectRange(name string) (first, last string, ok bool) {
	base, ok := strings.CutSuffix(path.Base(name), ".jsonl.gz")
	if !ok {
		return "", "", false
	}
	first, last, ok = strings.Cut(base, "_")
	return first, last, ok && first <= last
}
