package storage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ittybit-oss/ittybit"
)

// listFiles returns the regular files under dir as slash-separated paths
// relative to dir, in lexical order. Hidden files and folders (names
// starting with a dot) are skipped; anything else that is not a regular
// file or a folder (a link, a device) is an error.
func listFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no files in %s", dir)
	}
	return files, nil
}

// lastLast runs fn on every name but last, a few at a time, then on last
// once all of them succeeded. last == "" means no ordering. A missing last
// is an upload_failed error: the caller promised a file that readers look
// for (the master playlist).
func lastLast(ctx context.Context, names []string, last string, fn func(ctx context.Context, name string) error) error {
	if last == "" {
		return parallel(ctx, names, fn)
	}
	i := slices.Index(names, last)
	if i < 0 {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s is missing from the files to publish (%s)", last, strings.Join(names, ", "))
	}
	others := slices.Delete(slices.Clone(names), i, i+1)
	if err := parallel(ctx, others, fn); err != nil {
		return err
	}
	return fn(ctx, last)
}

// parallel runs fn on each name with at most dirConcurrency at once. The
// first error cancels the rest and is returned once all have stopped.
func parallel(ctx context.Context, names []string, fn func(ctx context.Context, name string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, dirConcurrency)
	)
	for _, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, name); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}

// writeAtomic creates the file at path through write: the data goes to a
// hidden temporary file in the same folder, renamed into place only when
// write succeeded, so path holds a whole file or nothing new. Missing
// folders are created.
func writeAtomic(path string, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
