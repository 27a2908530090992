package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// open returns bucket/key as a File: its size, time and ETag from one HEAD,
// its bytes from ranged GETs made as it is read. Every GET carries the ETag,
// so a reader never mixes two versions of a replaced object: it fails
// instead.
func (s *S3) open(ctx context.Context, bucket, key string) (File, error) {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if isNotFound(err) {
		return nil, fmt.Errorf("open %s: %w", s3URL(bucket, key), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %s", s3URL(bucket, key), describeErr(err))
	}
	return &s3File{
		ctx: ctx, client: s.client, bucket: bucket, key: key,
		etag: head.ETag, size: aws.ToInt64(head.ContentLength), mod: aws.ToTime(head.LastModified),
	}, nil
}

// s3File reads an object as an io.ReadSeeker. Reads continue one GET
// (from the current offset to the end) until a Seek moves elsewhere; the
// next Read then starts another.
type s3File struct {
	// ctx is Open's: io.Reader has no context of its own, and the file
	// lives no longer than the request that opened it.
	ctx    context.Context
	client *s3.Client
	bucket string
	key    string
	etag   *string
	size   int64
	mod    time.Time

	off     int64         // where the next Read reads
	body    io.ReadCloser // the current GET's body, or nil
	bodyOff int64         // where body's next byte is in the object
}

func (f *s3File) Size() int64        { return f.size }
func (f *s3File) ModTime() time.Time { return f.mod }

func (f *s3File) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if f.body != nil && f.bodyOff != f.off {
		f.body.Close()
		f.body = nil
	}
	if f.body == nil {
		rng := fmt.Sprintf("bytes=%d-", f.off)
		out, err := f.client.GetObject(f.ctx, &s3.GetObjectInput{
			Bucket: &f.bucket, Key: &f.key, Range: &rng, IfMatch: f.etag,
		})
		if err != nil {
			return 0, fmt.Errorf("read %s: %s", s3URL(f.bucket, f.key), describeErr(err))
		}
		f.body, f.bodyOff = out.Body, f.off
	}
	n, err := f.body.Read(p)
	f.off += int64(n)
	f.bodyOff += int64(n)
	if errors.Is(err, io.EOF) {
		f.body.Close()
		f.body = nil
		if f.off < f.size {
			return n, fmt.Errorf("read %s: %w at %d of %d bytes", s3URL(f.bucket, f.key), io.ErrUnexpectedEOF, f.off, f.size)
		}
		err = nil
	}
	return n, err
}

func (f *s3File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	default:
		return f.off, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return f.off, errors.New("seek: negative position")
	}
	f.off = offset
	return offset, nil
}

func (f *s3File) Close() error {
	if f.body != nil {
		err := f.body.Close()
		f.body = nil
		return err
	}
	return nil
}
