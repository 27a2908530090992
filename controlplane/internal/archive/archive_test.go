package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/oklog/ulid/v2"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

// task makes a retiree created at ms, its id a ULID of that time.
func task(ms int64, n int, kind, status string) state.Retiree {
	id := "task_" + strings.ToLower(ulid.MustNew(uint64(ms), ulid.Monotonic(strings.NewReader(strings.Repeat(fmt.Sprint(n%10), 64)), 0)).String())
	data, _ := json.Marshal(map[string]any{"id": id, "object": "task", "kind": kind, "status": status, "created_at": ms, "n": n})
	return state.Retiree{ID: id, CreatedAt: ms, FinishedAt: ms + 1000, JSON: data}
}

// stores are the managed storages the archive is tried on: a folder and
// a bucket in versitygw.
func stores(t *testing.T) map[string]storage.Managed {
	t.Helper()
	local, err := storage.OpenManaged(context.Background(), t.TempDir(), storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	srv.MakeBucket(t, "managed")
	bucket, err := storage.OpenManaged(context.Background(), "s3://managed/prefix", srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]storage.Managed{"folder": local, "s3": bucket}
}

func ids(pages ...[][]byte) []string {
	var out []string
	for _, p := range pages {
		for _, data := range p {
			var t struct{ ID string }
			_ = json.Unmarshal(data, &t)
			out = append(out, t.ID)
		}
	}
	return out
}

// TestArchive: tasks written in batches over two days read back by id and
// in lists (both orders, cursors both ways, filters), each once although
// a batch was written twice.
func TestArchive(t *testing.T) {
	day1 := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC).UnixMilli()
	day2 := time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC).UnixMilli()
	var all []state.Retiree
	for i := range 6 {
		all = append(all, task(day1+int64(i), i, "video", "completed"))
	}
	for i := range 5 {
		status := "cancelled"
		if i%2 == 0 {
			status = "failed"
		}
		all = append(all, task(day2+int64(i), 6+i, "audio", status))
	}
	var want []string // oldest first
	for _, r := range all {
		want = append(want, r.ID)
	}
	ctx := context.Background()
	for name, m := range stores(t) {
		t.Run(name, func(t *testing.T) {
			a := New(m, t.TempDir())
			// Two batches, the second spanning both days; then the first
			// again and part of it with another (the leader changed before
			// the entries committed).
			for _, batch := range [][]state.Retiree{all[:4], all[4:], all[:4], {all[2], all[3], all[5]}} {
				if err := a.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := m.List(ctx, Prefix)
			if err != nil || len(keys) != 4 {
				t.Fatalf("objects %v (%v), want 4: three on the first day, one on the second", keys, err)
			}
			for _, r := range all {
				got, err := New(m, t.TempDir()).Task(ctx, r.ID) // no cache
				if err != nil || string(got) != string(r.JSON) {
					t.Errorf("task %s: %s (%v)", r.ID, got, err)
				}
			}
			for _, id := range []string{"task_" + strings.ToLower(ulid.Make().String()), "task_nope", "t1"} {
				if _, err := a.Task(ctx, id); !errors.Is(err, ErrNotFound) {
					t.Errorf("task %s: %v, want not found", id, err)
				}
			}
			page := func(q Query) ([]string, bool) {
				t.Helper()
				p, more, err := a.List(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				return ids(p), more
			}
			rev := func(s []string) []string {
				out := make([]string, len(s))
				for i, x := range s {
					out[len(s)-1-i] = x
				}
				return out
			}
			// Newest first, in pages of 4 across the day boundary.
			var got []string
			for q := (Query{Limit: 4}); ; {
				p, more := page(q)
				got = append(got, p...)
				if !more {
					break
				}
				q.After = p[len(p)-1]
			}
			if diff := cmp.Diff(rev(want), got); diff != "" {
				t.Errorf("newest first (-want +got):\n%s", diff)
			}
			got = nil
			for q := (Query{Limit: 3, Asc: true}); ; {
				p, more := page(q)
				got = append(got, p...)
				if !more {
					break
				}
				q.After = p[len(p)-1]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("oldest first (-want +got):\n%s", diff)
			}
			if p, more := page(Query{Limit: 2, Before: want[5]}); cmp.Diff(rev(want[6:8]), p) != "" || !more {
				t.Errorf("before %s: %v %v", want[5], p, more)
			}
			if p, _ := page(Query{Limit: 10, Status: "failed"}); cmp.Diff([]string{want[10], want[8], want[6]}, p) != "" {
				t.Errorf("failed: %v", p)
			}
			if p, _ := page(Query{Limit: 10, Kind: "video", After: want[3]}); cmp.Diff(rev(want[:3]), p) != "" {
				t.Errorf("video after %s: %v", want[3], p)
			}
		})
	}
}

// TestWriteFails: a write that cannot be stored is an error, and leaves
// nothing half written.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	m, err := storage.OpenManaged(context.Background(), dir, storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A file where the archive's folder goes: nothing can be written
	// under it, even by root.
	if err := os.WriteFile(filepath.Join(dir, "archive"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := New(m, t.TempDir())
	if err := a.Write(context.Background(), []state.Retiree{task(time.Now().UnixMilli(), 1, "video", "completed")}); err == nil {
		t.Fatal("archived under a file")
	}
	if err := os.Remove(filepath.Join(dir, "archive")); err != nil {
		t.Fatal(err)
	}
	r := task(time.Now().UnixMilli(), 2, "video", "completed")
	if err := a.Write(context.Background(), []state.Retiree{r}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Task(context.Background(), r.ID); err != nil || string(got) != string(r.JSON) {
		t.Errorf("after the folder came back: %s %v", got, err)
	}
	// A task archived after its day was listed (and cached) is found.
	r2 := task(time.Now().UnixMilli()+1, 3, "audio", "failed")
	if err := a.Write(context.Background(), []state.Retiree{r2}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Task(context.Background(), r2.ID); err != nil || string(got) != string(r2.JSON) {
		t.Errorf("archived after its day was listed: %s %v", got, err)
	}
}
