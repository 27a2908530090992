package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// stagingDir, under the store's root, holds files being written; a
// finished one is renamed to its key. Keys never name hidden files, so it
// is out of their reach.
const stagingDir = ".tmp"

// localStore is managed storage in a local directory. Every path goes
// through an os.Root, so no key, link or race reaches outside it.
type localStore struct {
	dir   string // absolute
	root  *os.Root
	hooks hooks
}

var _ Managed = (*localStore)(nil)

func openLocal(dir string) (*localStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("managed storage %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, stagingDir), 0o755); err != nil {
		return nil, fmt.Errorf("managed storage: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("managed storage: %w", err)
	}
	l := &localStore{dir: abs, root: root}
	l.removeStale(time.Now().Add(-staleAfter))
	return l, nil
}

// staleAfter is the age past which a staged file is a leftover of a crash:
// no write takes that long.
const staleAfter = 24 * time.Hour

// removeStale deletes staged files last written before cutoff. It is best
// effort: what it cannot remove, a later start will.
func (l *localStore) removeStale(cutoff time.Time) {
	entries, err := fs.ReadDir(l.root.FS(), stagingDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			l.root.Remove(path.Join(stagingDir, e.Name()))
		}
	}
}

func (l *localStore) URL(key string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(l.dir, filepath.FromSlash(key)))}
	return u.String()
}

func (l *localStore) Put(ctx context.Context, key, localPath string) error {
	what := "store " + localPath + " as " + l.URL(key)
	if err := checkKey(key); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s: %v", what, err)
	}
	f, err := os.Open(localPath)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	defer f.Close()
	var src io.Reader = f
	if l.hooks.source != nil {
		src = l.hooks.source(f)
	}
	if err := l.write(ctx, key, src); err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	return nil
}

// write stores what src holds under key: into the staging folder, synced,
// then renamed over key, so readers see the old file or the new one, never
// part of one.
func (l *localStore) write(ctx context.Context, key string, src io.Reader) (err error) {
	tmp, f, err := l.createStaged()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			l.root.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, src}); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return l.publish(tmp, key)
}

func (l *localStore) createStaged() (string, *os.File, error) {
	tmp := path.Join(stagingDir, rand.Text())
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	return tmp, f, err
}

// publish renames the staged file tmp to key.
func (l *localStore) publish(tmp, key string) error {
	if err := l.root.MkdirAll(path.Dir(key), 0o755); err != nil {
		return err
	}
	if err := l.root.Rename(tmp, key); err != nil {
		return err
	}
	if l.hooks.published != nil {
		l.hooks.published(l.URL(key))
	}
	return nil
}

func (l *localStore) PutDir(ctx context.Context, prefix, localDir, last string) error {
	what := "store " + localDir + " under " + l.URL(prefix)
	if err := checkKey(prefix); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s: %v", what, err)
	}
	files, err := listFiles(localDir)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	err = lastLast(ctx, files, last, func(ctx context.Context, rel string) error {
		return l.Put(ctx, path.Join(prefix, rel), filepath.Join(localDir, filepath.FromSlash(rel)))
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	return nil
}

func (l *localStore) Get(ctx context.Context, key, localPath string) error {
	what := "fetch " + l.URL(key)
	f, err := l.open(key)
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	defer f.Close()
	err = writeAtomic(localPath, func(dst *os.File) error {
		_, err := io.Copy(dst, ctxReader{ctx, f})
		return err
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	return nil
}

// keysUnder lists the keys under prefix, relative to it, in lexical order;
// none is an error.
func (l *localStore) keysUnder(prefix string) ([]string, error) {
	rels, err := l.listUnder(prefix)
	if err == nil && len(rels) == 0 {
		return nil, fmt.Errorf("nothing stored under %s", prefix)
	}
	return rels, err
}

// List implements Managed.
func (l *localStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, stepErr(ctx, ittybit.ErrFetchFailed, "list "+l.URL(prefix), err)
	}
	rels, err := l.listUnder(prefix)
	if err != nil {
		return nil, stepErr(ctx, ittybit.ErrFetchFailed, "list "+l.URL(prefix), err)
	}
	return rels, nil
}

// listUnder lists the keys under prefix, relative to it, in lexical order
// (none when nothing is stored there).
func (l *localStore) listUnder(prefix string) ([]string, error) {
	if err := checkKey(prefix); err != nil {
		return nil, err
	}
	var rels []string
	err := fs.WalkDir(l.root.FS(), prefix, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == prefix {
			if !d.IsDir() {
				return fmt.Errorf("%s is a file, not a folder", prefix)
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rels = append(rels, strings.TrimPrefix(p, prefix+"/"))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return rels, err
}

func (l *localStore) GetDir(ctx context.Context, prefix, localDir string) error {
	what := "fetch " + l.URL(prefix)
	rels, err := l.keysUnder(prefix)
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	err = parallel(ctx, rels, func(ctx context.Context, rel string) error {
		return l.Get(ctx, path.Join(prefix, rel), filepath.Join(localDir, filepath.FromSlash(rel)))
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	return nil
}

func (l *localStore) CopyDir(ctx context.Context, fromPrefix, toPrefix, last string) error {
	what := "copy " + l.URL(fromPrefix) + " to " + l.URL(toPrefix)
	if err := checkKey(toPrefix); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s: %v", what, err)
	}
	rels, err := l.keysUnder(fromPrefix)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	err = lastLast(ctx, rels, last, func(ctx context.Context, rel string) error {
		return l.copy(ctx, path.Join(fromPrefix, rel), path.Join(toPrefix, rel))
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	return nil
}

// copy publishes a copy of from at to. Stored files are never changed in
// place (a Put renames a new file over the old), so a hard link is a
// faithful copy; where links fail, the bytes are copied.
func (l *localStore) copy(ctx context.Context, from, to string) error {
	tmp := path.Join(stagingDir, rand.Text())
	if err := l.root.Link(from, tmp); err == nil {
		err := l.publish(tmp, to)
		// Renaming a link over another link to the same file succeeds and
		// leaves both, so tmp may remain even on success.
		l.root.Remove(tmp)
		return err
	}
	src, err := l.open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	return l.write(ctx, to, src)
}

func (l *localStore) Open(_ context.Context, key string) (File, error) {
	return l.open(key)
}

func (l *localStore) open(key string) (*localFile, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open %q: %w (%v)", key, ErrNotFound, err)
	}
	f, err := l.root.Open(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", l.URL(key), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (not a file)", l.URL(key), ErrNotFound)
	}
	return &localFile{File: f, info: st}, nil
}

func (l *localStore) DeletePrefix(_ context.Context, prefix string) error {
	if err := checkKey(prefix); err != nil {
		return fmt.Errorf("delete %q: %w", prefix, err)
	}
	if err := l.root.RemoveAll(prefix); err != nil {
		return fmt.Errorf("delete %s: %w", l.URL(prefix), err)
	}
	return nil
}

// localFile is an open stored file; the *os.File keeps reading the file
// it opened even when a Put replaces the key.
type localFile struct {
	*os.File
	info fs.FileInfo
}

func (f *localFile) Size() int64        { return f.info.Size() }
func (f *localFile) ModTime() time.Time { return f.info.ModTime() }

// ctxReader stops a copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Link stores the local file at key by hard-linking it, when the file and
// the store share a filesystem: no copy, and the key appears whole. It
// fails (and the caller copies with Put) across filesystems. The linked
// file must not be written afterwards.
func (l *localStore) Link(ctx context.Context, key, localPath string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp := path.Join(stagingDir, rand.Text())
	if err := os.Link(localPath, filepath.Join(l.dir, filepath.FromSlash(tmp))); err != nil {
		return err
	}
	if err := l.publish(tmp, key); err != nil {
		l.root.Remove(tmp)
		return err
	}
	return nil
}
