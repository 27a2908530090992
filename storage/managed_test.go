package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

const mib = 1 << 20

// backend is one kind of managed storage under test.
type backend struct {
	name string
	// open returns a fresh, empty store.
	open func(t *testing.T) storage.Managed
	// staged lists what a failed write may have left behind where no
	// reader looks: staged local files, unfinished multipart uploads.
	staged func(t *testing.T) []string
}

// backends returns local and S3 managed storage. Both run every test of
// this file; the S3 one talks to a real versitygw, with 5 MiB parts so a
// few MiB go multipart.
func backends(t *testing.T) []backend {
	t.Helper()
	srv := s3test.Start(t)
	var localDir string
	var bucket string
	n := 0
	return []backend{{
		name: "local",
		open: func(t *testing.T) storage.Managed {
			localDir = filepath.Join(t.TempDir(), "files")
			return mustOpen(t, localDir, storage.S3Config{})
		},
		staged: func(t *testing.T) []string {
			entries, err := os.ReadDir(filepath.Join(localDir, ".tmp"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		},
	}, {
		name: "s3",
		open: func(t *testing.T) storage.Managed {
			n++
			bucket = fmt.Sprintf("managed-%d", n)
			srv.MakeBucket(t, bucket)
			m := mustOpen(t, "s3://"+bucket+"/ittybit", srv.Config())
			storage.SetPartSizes(m, 5*mib, 5*mib, 5*mib)
			return m
		},
		staged: func(t *testing.T) []string {
			out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &bucket})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, u := range out.Uploads {
				keys = append(keys, *u.Key)
			}
			return keys
		},
	}}
}

func mustOpen(tb testing.TB, spec string, cfg storage.S3Config) storage.Managed {
	tb.Helper()
	m, err := storage.OpenManaged(context.Background(), spec, cfg)
	if err != nil {
		tb.Fatalf("OpenManaged(%s): %v", spec, err)
	}
	return m
}

// pattern returns n bytes that differ from every shift of themselves, so a
// misplaced range shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) ^ seed
	}
	return b
}

func writeFile(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func readKey(tb testing.TB, m storage.Managed, key string) []byte {
	tb.Helper()
	f, err := m.Open(context.Background(), key)
	if err != nil {
		tb.Fatalf("Open(%s): %v", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		tb.Fatalf("read %s: %v", key, err)
	}
	return b
}

func wantKind(tb testing.TB, err error, kind ittybit.ErrorKind) {
	tb.Helper()
	if got := ittybit.KindOf(err); got != kind {
		tb.Fatalf("error kind %q, want %q (error: %v)", got, kind, err)
	}
}

// hlsTree is an adaptive result as the encoder leaves it, with a hidden
// file that must not be stored.
var hlsTree = map[string]string{
	"master.m3u8":      "#EXTM3U\n360p/index.m3u8\n720p/index.m3u8\n",
	"360p/index.m3u8":  "#EXTM3U\nseg0.m4s\n",
	"360p/init.mp4":    "init360",
	"360p/seg0.m4s":    "seg360",
	"720p/index.m3u8":  "#EXTM3U\nseg0.m4s\nseg1.m4s\n",
	"720p/init.mp4":    "init720",
	"720p/seg0.m4s":    "seg720-0",
	"720p/seg1.m4s":    "seg720-1",
	"poster/thumb.jpg": "jpeg",
}

func writeTree(tb testing.TB, dir string, tree map[string]string) {
	tb.Helper()
	for rel, body := range tree {
		writeFile(tb, filepath.Join(dir, filepath.FromSlash(rel)), []byte(body))
	}
	writeFile(tb, filepath.Join(dir, ".DS_Store"), []byte("hidden"))
}

func checkTree(tb testing.TB, dir string, tree map[string]string) {
	tb.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(readFile(tb, p))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) != len(tree) {
		tb.Errorf("got %d files %v, want %d", len(got), slices.Sorted(maps.Keys(got)), len(tree))
	}
	for rel, want := range tree {
		if got[rel] != want {
			tb.Errorf("%s = %q, want %q", rel, got[rel], want)
		}
	}
}

// orderRecorder records publications and, at each one, whether the file
// that must come last was already visible.
type orderRecorder struct {
	mu        sync.Mutex
	m         storage.Managed
	lastKey   string
	order     []string
	lastEarly []string // publications that happened after last was visible
}

func (o *orderRecorder) published(location string) {
	visible := false
	if f, err := o.m.Open(context.Background(), o.lastKey); err == nil {
		f.Close()
		visible = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.order = append(o.order, location)
	if visible && location != o.m.URL(o.lastKey) {
		o.lastEarly = append(o.lastEarly, location)
	}
}

func (o *orderRecorder) check(tb testing.TB, n int) {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.order) != n {
		tb.Fatalf("%d publications, want %d: %v", len(o.order), n, o.order)
	}
	if got, want := o.order[n-1], o.m.URL(o.lastKey); got != want {
		tb.Errorf("last publication %s, want %s (order %v)", got, want, o.order)
	}
	if len(o.lastEarly) > 0 {
		tb.Errorf("%s was visible before %v were published", o.lastKey, o.lastEarly)
	}
}

func TestManaged(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("put and get round trip", func(t *testing.T) {
				m := b.open(t)
				dir := t.TempDir()
				data := pattern(3*mib+123, 7)
				src := writeFile(t, filepath.Join(dir, "in.mp4"), data)
				if err := m.Put(ctx, "tasks/t1/source.mp4", src); err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(dir, "cache", "out.mp4")
				if err := m.Get(ctx, "tasks/t1/source.mp4", dst); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(readFile(t, dst), data) {
					t.Error("Get returned other bytes than Put stored")
				}
				// A second Put replaces the object whole.
				data2 := pattern(2*mib, 9)
				writeFile(t, src, data2)
				if err := m.Put(ctx, "tasks/t1/source.mp4", src); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(readKey(t, m, "tasks/t1/source.mp4"), data2) {
					t.Error("after a second Put the key does not hold the new bytes")
				}
				if !strings.HasSuffix(m.URL("tasks/t1/source.mp4"), "/tasks/t1/source.mp4") {
					t.Errorf("URL = %s", m.URL("tasks/t1/source.mp4"))
				}
			})

			t.Run("get of a missing key is fetch_failed", func(t *testing.T) {
				m := b.open(t)
				err := m.Get(ctx, "tasks/none/x.mp4", filepath.Join(t.TempDir(), "x"))
				wantKind(t, err, ittybit.ErrFetchFailed)
				if _, err := m.Open(ctx, "tasks/none/x.mp4"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Open of a missing key: %v, want ErrNotFound", err)
				}
			})

			t.Run("unclean keys are refused", func(t *testing.T) {
				m := b.open(t)
				src := writeFile(t, filepath.Join(t.TempDir(), "f"), []byte("x"))
				for _, key := range []string{"", "/abs", "a/../b", "a/./b", "a//b", "a/", "../x", ".tmp/x", "a\\b", "a/\x00"} {
					wantKind(t, m.Put(ctx, key, src), ittybit.ErrUploadFailed)
					if _, err := m.Open(ctx, key); !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Open(%q): %v, want ErrNotFound", key, err)
					}
				}
			})

			t.Run("put dir, get dir, copy dir publish last last", func(t *testing.T) {
				m := b.open(t)
				src := filepath.Join(t.TempDir(), "out")
				writeTree(t, src, hlsTree)

				rec := &orderRecorder{m: m, lastKey: "tasks/t1/staged/master.m3u8"}
				storage.SetPublishedHook(m, rec.published)
				if err := m.PutDir(ctx, "tasks/t1/staged", src, "master.m3u8"); err != nil {
					t.Fatal(err)
				}
				rec.check(t, len(hlsTree))

				got := filepath.Join(t.TempDir(), "got")
				if err := m.GetDir(ctx, "tasks/t1/staged", got); err != nil {
					t.Fatal(err)
				}
				checkTree(t, got, hlsTree)

				rec = &orderRecorder{m: m, lastKey: "tasks/t1/out/master.m3u8"}
				storage.SetPublishedHook(m, rec.published)
				if err := m.CopyDir(ctx, "tasks/t1/staged", "tasks/t1/out", "master.m3u8"); err != nil {
					t.Fatal(err)
				}
				rec.check(t, len(hlsTree))
				storage.SetPublishedHook(m, nil)

				got2 := filepath.Join(t.TempDir(), "got2")
				if err := m.GetDir(ctx, "tasks/t1/out", got2); err != nil {
					t.Fatal(err)
				}
				checkTree(t, got2, hlsTree)
			})

			t.Run("a missing last file fails before publishing it", func(t *testing.T) {
				m := b.open(t)
				src := filepath.Join(t.TempDir(), "out")
				writeTree(t, src, hlsTree)
				wantKind(t, m.PutDir(ctx, "tasks/t1/out", src, "nope.m3u8"), ittybit.ErrUploadFailed)
				wantKind(t, m.GetDir(ctx, "tasks/t9/out", t.TempDir()), ittybit.ErrFetchFailed)
				wantKind(t, m.CopyDir(ctx, "tasks/t9/out", "tasks/t9/pub", ""), ittybit.ErrUploadFailed)
			})

			t.Run("open seeks and reads ranges", func(t *testing.T) {
				m := b.open(t)
				data := pattern(6*mib+5, 3)
				before := time.Now().Add(-2 * time.Second)
				if err := m.Put(ctx, "tasks/t2/video.mp4", writeFile(t, filepath.Join(t.TempDir(), "v"), data)); err != nil {
					t.Fatal(err)
				}
				f, err := m.Open(ctx, "tasks/t2/video.mp4")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if f.Size() != int64(len(data)) {
					t.Errorf("Size = %d, want %d", f.Size(), len(data))
				}
				if mt := f.ModTime(); mt.Before(before) || mt.After(time.Now().Add(2*time.Second)) {
					t.Errorf("ModTime = %v, want about now", mt)
				}
				reads := []struct {
					off    int64
					whence int
					at     int64 // where the read starts in data
					n      int
				}{
					{0, io.SeekStart, 0, 100},
					{5 * mib, io.SeekStart, 5 * mib, 2 * mib}, // across the part boundary, to the end
					{-10, io.SeekEnd, int64(len(data)) - 10, 10},
					{1000, io.SeekStart, 1000, 512},
					{-512, io.SeekCurrent, 1000, 512},
					{3, io.SeekCurrent, 1515, 4096},
				}
				for _, r := range reads {
					pos, err := f.Seek(r.off, r.whence)
					if err != nil || pos != r.at {
						t.Fatalf("Seek(%d, %d) = %d, %v; want %d", r.off, r.whence, pos, err, r.at)
					}
					want := data[r.at:min(r.at+int64(r.n), int64(len(data)))]
					got := make([]byte, len(want))
					if _, err := io.ReadFull(f, got); err != nil {
						t.Fatalf("read %d bytes at %d: %v", len(want), r.at, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("bytes at %d differ", r.at)
					}
				}
				if _, err := f.Seek(0, io.SeekEnd); err != nil {
					t.Fatal(err)
				}
				if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
				}
				if _, err := f.Seek(-1, io.SeekStart); err == nil {
					t.Error("Seek to -1 succeeded")
				}
			})

			t.Run("open refuses folders", func(t *testing.T) {
				m := b.open(t)
				src := filepath.Join(t.TempDir(), "out")
				writeTree(t, src, hlsTree)
				if err := m.PutDir(ctx, "tasks/t1", src, ""); err != nil {
					t.Fatal(err)
				}
				for _, key := range []string{"tasks/t1/720p", "tasks/t1", "tasks"} {
					if _, err := m.Open(ctx, key); !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Open(%s): %v, want ErrNotFound", key, err)
					}
				}
			})

			t.Run("delete prefix", func(t *testing.T) {
				m := b.open(t)
				src := filepath.Join(t.TempDir(), "out")
				writeTree(t, src, hlsTree)
				for _, p := range []string{"tasks/t1", "tasks/t10"} {
					if err := m.PutDir(ctx, p, src, "master.m3u8"); err != nil {
						t.Fatal(err)
					}
				}
				if err := m.DeletePrefix(ctx, "tasks/t1"); err != nil {
					t.Fatal(err)
				}
				for rel := range hlsTree {
					if _, err := m.Open(ctx, "tasks/t1/"+rel); !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("tasks/t1/%s after DeletePrefix: %v", rel, err)
					}
				}
				// A prefix is a folder, not a string prefix: t10 stays.
				got := filepath.Join(t.TempDir(), "got")
				if err := m.GetDir(ctx, "tasks/t10", got); err != nil {
					t.Fatal(err)
				}
				checkTree(t, got, hlsTree)
				if err := m.DeletePrefix(ctx, "tasks/t1"); err != nil {
					t.Errorf("deleting an empty prefix: %v", err)
				}
			})

			t.Run("a put whose source fails leaves nothing", func(t *testing.T) {
				m := b.open(t)
				dir := t.TempDir()
				old := pattern(1000, 1)
				if err := m.Put(ctx, "tasks/t3/old.mp4", writeFile(t, filepath.Join(dir, "old"), old)); err != nil {
					t.Fatal(err)
				}
				// The source breaks after more than one part has gone.
				broken := errors.New("disk read error")
				storage.SetSourceHook(m, func(r io.Reader) io.Reader { return &failingReader{r: r, left: 7 * mib, err: broken} })
				src := writeFile(t, filepath.Join(dir, "new"), pattern(12*mib, 2))
				for _, key := range []string{"tasks/t3/new.mp4", "tasks/t3/old.mp4"} {
					wantKind(t, m.Put(ctx, key, src), ittybit.ErrUploadFailed)
				}
				storage.SetSourceHook(m, nil)
				if _, err := m.Open(ctx, "tasks/t3/new.mp4"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("after a failed Put, Open: %v; want ErrNotFound", err)
				}
				if !bytes.Equal(readKey(t, m, "tasks/t3/old.mp4"), old) {
					t.Error("a failed Put over an existing key changed it")
				}
				if left := b.staged(t); len(left) > 0 {
					t.Errorf("a failed Put left %v behind", left)
				}
			})

			t.Run("readers never see part of a file", func(t *testing.T) {
				m := b.open(t)
				dir := t.TempDir()
				versions := [][]byte{bytes.Repeat([]byte{'a'}, 6*mib), bytes.Repeat([]byte{'b'}, 7*mib+3)}
				srcs := []string{writeFile(t, filepath.Join(dir, "a"), versions[0]), writeFile(t, filepath.Join(dir, "b"), versions[1])}
				const key = "tasks/t4/out.mp4"
				if err := m.Put(ctx, key, srcs[0]); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					for i := range 8 {
						if err := m.Put(ctx, key, srcs[(i+1)%2]); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				whole := 0
				check := func(what string, got []byte) {
					if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
						t.Fatalf("%s saw %d bytes that are neither version", what, len(got))
					}
					whole++
				}
				for writing := true; writing; {
					select {
					case err := <-done:
						if err != nil {
							t.Fatal(err)
						}
						writing = false
					default:
					}
					// Open pins the version it opened: reading finishes it
					// or fails, never mixes two.
					if f, err := m.Open(ctx, key); err == nil {
						got, err := io.ReadAll(f)
						f.Close()
						if err == nil {
							check("Open", got)
						}
					}
					p := filepath.Join(dir, "get")
					if err := m.Get(ctx, key, p); err == nil {
						check("Get", readFile(t, p))
					}
				}
				if whole == 0 {
					t.Error("no read succeeded while writing")
				}
				t.Logf("%d whole reads", whole)
			})
		})
	}
}

// failingReader passes left bytes through, then fails with err.
type failingReader struct {
	r    io.Reader
	left int64
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	return n, err
}

func TestOpenManagedLocalURL(t *testing.T) {
	dir := t.TempDir()
	m := mustOpen(t, dir, storage.S3Config{})
	if got, want := m.URL("tasks/t1/a b.mp4"), "file://"+filepath.ToSlash(dir)+"/tasks/t1/a%20b.mp4"; got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
	if _, err := storage.OpenManaged(context.Background(), "s3://Bad_Bucket/x", storage.S3Config{}); err == nil {
		t.Error("OpenManaged accepted an invalid bucket name")
	}
}
