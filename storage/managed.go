package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// Managed is ittybit's own storage: ingested sources, staged and published
// results. It is a local directory or an S3 bucket and prefix (whose
// operator-configured endpoint is trusted). Keys are clean relative
// slash-separated paths ("tasks/task_1/master.m3u8"): no empty, "." or ".."
// segments and no hidden names (segments starting with a dot), which keeps
// the local store's staging area out of reach.
//
// Writes report *ittybit.Error of kind ErrUploadFailed, reads of kind
// ErrFetchFailed, either ErrCancelled when ctx was cancelled.
type Managed interface {
	// Put stores the file at localPath under key, atomically: the object
	// appears whole or not at all, and replaces any previous one whole.
	Put(ctx context.Context, key, localPath string) error
	// PutDir stores every file under localDir at prefix/relpath, the file
	// whose relative path is last (when not empty) after all the others.
	PutDir(ctx context.Context, prefix, localDir, last string) error
	// Get copies the object at key to localPath, which appears whole or
	// not at all.
	Get(ctx context.Context, key, localPath string) error
	// GetDir copies every object under prefix to localDir/relpath.
	GetDir(ctx context.Context, prefix, localDir string) error
	// CopyDir copies every object under fromPrefix to toPrefix, the one
	// whose relative path is last (when not empty) after all the others:
	// it publishes a staged result.
	CopyDir(ctx context.Context, fromPrefix, toPrefix, last string) error
	// Open opens the object at key for serving. It returns an error
	// matching ErrNotFound when there is none (folders are not objects).
	Open(ctx context.Context, key string) (File, error)
	// List returns the keys of the objects under prefix, relative to it,
	// in lexical order: none when nothing is stored there.
	List(ctx context.Context, prefix string) ([]string, error)
	// DeletePrefix removes every object under prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	// URL says where key is, for people and logs: "file:///…" or
	// "s3://bucket/prefix/key".
	URL(key string) string
}

// File is an opened managed object: what http.ServeContent needs.
type File interface {
	io.ReadSeekCloser
	// Size is the object's length in bytes.
	Size() int64
	// ModTime is when the object was last written.
	ModTime() time.Time
}

// ErrNotFound means there is no object at a key.
var ErrNotFound = errors.New("no such file")

// OpenManaged opens the managed storage that spec names: a local
// directory (created when missing) or s3://bucket/prefix, reached with s3.
func OpenManaged(ctx context.Context, spec string, s3 S3Config) (Managed, error) {
	if strings.HasPrefix(strings.ToLower(spec), "s3://") {
		bucket, prefix, err := ParseS3URL(spec)
		if err != nil {
			return nil, fmt.Errorf("managed storage: %w", err)
		}
		if prefix != "" {
			if err := checkKey(strings.TrimSuffix(prefix, "/")); err != nil {
				return nil, fmt.Errorf("managed storage %s: the prefix: %w", spec, err)
			}
		}
		client, err := NewS3(ctx, s3)
		if err != nil {
			return nil, fmt.Errorf("managed storage %s: %w", spec, err)
		}
		return &s3Store{s3: client, bucket: bucket, prefix: strings.Trim(prefix, "/")}, nil
	}
	if spec == "" {
		return nil, errors.New("managed storage: no directory or s3:// URL given")
	}
	return openLocal(spec)
}

// checkKey refuses keys that are not clean relative paths (see Managed).
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > 1024 {
		return fmt.Errorf("key %.40q… is longer than 1024 bytes", key)
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r == '\\' || unicode.IsControl(r) || r == unicode.ReplacementChar }) {
		return fmt.Errorf("key %q holds a backslash, a control character or invalid UTF-8", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("key %q is not a clean relative path: no empty, \".\" or \"..\" segments, no hidden names", key)
		}
	}
	return nil
}
