package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit"
)

// Download copies the object at s3URL (s3://bucket/key) to localPath and
// returns its size. The file appears at localPath whole or not at all.
// maxBytes > 0 caps the object's size. Errors are *ittybit.Error of kind
// ErrFetchFailed (missing object, denied access, network), ErrInputTooLarge
// or ErrCancelled.
func (s *S3) Download(ctx context.Context, s3URL, localPath string, maxBytes int64) (int64, error) {
	bucket, key, err := ParseS3URL(s3URL)
	if err == nil && key == "" {
		err = errors.New("the URL names a bucket, not an object")
	}
	if err != nil {
		return 0, ittybit.Errorf(ittybit.ErrFetchFailed, "download %s: %v", s3URL, err)
	}
	what := "download " + s3URL
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return 0, stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	size := aws.ToInt64(head.ContentLength)
	if maxBytes > 0 && size > maxBytes {
		return 0, ittybit.Errorf(ittybit.ErrInputTooLarge, "the input %s is %s, over the limit of %s", s3URL, humanBytes(size), humanBytes(maxBytes))
	}
	var n int64
	err = writeAtomic(localPath, func(f *os.File) error {
		if size == 0 {
			return nil // a ranged GET of an empty object is an error
		}
		w := &cappedWriterAt{w: f, limit: size}
		_, err := s.tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{
			Bucket: &bucket, Key: &key, WriterAt: w,
			// Every part must come from the object measured above.
			IfMatch: head.ETag,
		}, s.tmOptions)
		if err != nil {
			return err
		}
		if n = w.written.Load(); n != size {
			return ittybit.Errorf(ittybit.ErrFetchFailed, "%s: got %d of %d bytes", what, n, size)
		}
		return nil
	})
	if err != nil {
		return 0, stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	return n, nil
}

// cappedWriterAt refuses writes past limit, so a server sending more than
// it announced cannot fill the disk.
type cappedWriterAt struct {
	w       io.WriterAt
	limit   int64
	written atomic.Int64
}

func (c *cappedWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > c.limit {
		return 0, ittybit.Errorf(ittybit.ErrFetchFailed, "the server sent more than the %d bytes it announced", c.limit)
	}
	n, err := c.w.WriteAt(p, off)
	c.written.Add(int64(n))
	return n, err
}

// Upload copies the file at localPath to s3URL (s3://bucket/key), in
// parallel parts when it is large. S3 makes the object visible only when
// the upload completes, and a failed multipart upload is aborted, so
// nothing partial appears under the key. Errors are *ittybit.Error of kind
// ErrUploadFailed or ErrCancelled.
func (s *S3) Upload(ctx context.Context, localPath, s3URL string) error {
	bucket, key, err := ParseS3URL(s3URL)
	if err == nil && key == "" {
		err = errors.New("the URL names a bucket, not an object")
	}
	if err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "upload to %s: %v", s3URL, err)
	}
	what := "upload " + localPath + " to " + s3URL
	f, err := os.Open(localPath)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	if !st.Mode().IsRegular() {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s: not a regular file", what)
	}
	var body io.Reader = f
	if s.hooks.source != nil {
		body = s.hooks.source(f)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket: &bucket, Key: &key, Body: body, ContentLength: aws.Int64(st.Size()),
	}
	if ct := contentType(key); ct != "" {
		in.ContentType = &ct
	}
	if _, err := s.tm.UploadObject(ctx, in, s.tmOptions); err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	s.published(s3URL)
	return nil
}

// Size returns the size of the object at s3URL; ErrNotFound (wrapped)
// when there is none.
func (s *S3) Size(ctx context.Context, s3URL string) (int64, error) {
	bucket, key, err := ParseS3URL(s3URL)
	if err == nil && key == "" {
		err = errors.New("the URL names a bucket, not an object")
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s3URL, err)
	}
	f, err := s.open(ctx, bucket, key)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Size(), nil
}

// UploadDir uploads every file under localDir to s3PrefixURL/relpath. The
// file whose relative path is last (e.g. "master.m3u8"), when not empty,
// must exist and is uploaded only after every other file succeeded, so a
// reader that finds it finds everything it references. Hidden files (names
// starting with a dot) are skipped. Errors are *ittybit.Error of kind
// ErrUploadFailed or ErrCancelled.
func (s *S3) UploadDir(ctx context.Context, localDir, s3PrefixURL, last string) error {
	bucket, prefix, err := ParseS3URL(s3PrefixURL)
	if err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "upload %s: %v", localDir, err)
	}
	files, err := listFiles(localDir)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, "upload "+localDir, err)
	}
	err = lastLast(ctx, files, last, func(ctx context.Context, rel string) error {
		return s.Upload(ctx, filepath.Join(localDir, filepath.FromSlash(rel)), s3URL(bucket, joinKey(prefix, rel)))
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, "upload "+localDir+" to "+s3PrefixURL, err)
	}
	return nil
}
