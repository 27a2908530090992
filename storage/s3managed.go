package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ittybit-oss/ittybit"
)

// s3Store is managed storage in an S3 bucket under a prefix. Objects are
// atomic by S3's nature: a PUT or a completed multipart upload or copy
// appears whole.
type s3Store struct {
	s3     *S3
	bucket string
	prefix string // no leading or trailing slash; may be empty
}

var _ Managed = (*s3Store)(nil)

func (m *s3Store) key(k string) string { return joinKey(m.prefix, k) }

func (m *s3Store) URL(key string) string { return s3URL(m.bucket, m.key(key)) }

func (m *s3Store) Put(ctx context.Context, key, localPath string) error {
	if err := checkKey(key); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "store %s: %v", localPath, err)
	}
	return m.s3.Upload(ctx, localPath, m.URL(key))
}

func (m *s3Store) PutDir(ctx context.Context, prefix, localDir, last string) error {
	if err := checkKey(prefix); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "store %s: %v", localDir, err)
	}
	return m.s3.UploadDir(ctx, localDir, m.URL(prefix), last)
}

func (m *s3Store) Get(ctx context.Context, key, localPath string) error {
	if err := checkKey(key); err != nil {
		return ittybit.Errorf(ittybit.ErrFetchFailed, "fetch %q: %v", key, err)
	}
	_, err := m.s3.Download(ctx, m.URL(key), localPath, 0)
	return err
}

// object is one listed object: its key relative to the listed prefix.
type object struct {
	rel  string
	size int64
}

// list returns the objects under prefix, relative to it, in key order;
// none is an error.
func (m *s3Store) list(ctx context.Context, prefix string) ([]object, error) {
	objs, err := m.listUnder(ctx, prefix)
	if err == nil && len(objs) == 0 {
		return nil, fmt.Errorf("nothing stored under %s", s3URL(m.bucket, m.key(prefix)+"/"))
	}
	return objs, err
}

// List implements Managed.
func (m *s3Store) List(ctx context.Context, prefix string) ([]string, error) {
	objs, err := m.listUnder(ctx, prefix)
	if err != nil {
		return nil, stepErr(ctx, ittybit.ErrFetchFailed, "list "+m.URL(prefix), err)
	}
	return rels(objs), nil
}

// listUnder returns the objects under prefix, relative to it, in key
// order (none when nothing is stored there). Keys that are not managed
// keys relative to the prefix (folder markers, hidden names, "..": written
// by something else) are left out, so they never become paths outside a
// local folder.
func (m *s3Store) listUnder(ctx context.Context, prefix string) ([]object, error) {
	if err := checkKey(prefix); err != nil {
		return nil, err
	}
	full := m.key(prefix) + "/"
	var objs []object
	pages := s3.NewListObjectsV2Paginator(m.s3.client, &s3.ListObjectsV2Input{Bucket: &m.bucket, Prefix: &full})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			rel := strings.TrimPrefix(aws.ToString(o.Key), full)
			if checkKey(rel) != nil {
				continue
			}
			objs = append(objs, object{rel: rel, size: aws.ToInt64(o.Size)})
		}
	}
	return objs, nil
}

func rels(objs []object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.rel
	}
	return out
}

func (m *s3Store) GetDir(ctx context.Context, prefix, localDir string) error {
	what := "fetch " + m.URL(prefix)
	objs, err := m.list(ctx, prefix)
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	err = parallel(ctx, rels(objs), func(ctx context.Context, rel string) error {
		_, err := m.s3.Download(ctx, m.URL(prefix+"/"+rel), filepath.Join(localDir, filepath.FromSlash(rel)), 0)
		return err
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrFetchFailed, what, err)
	}
	return nil
}

func (m *s3Store) CopyDir(ctx context.Context, fromPrefix, toPrefix, last string) error {
	what := "copy " + m.URL(fromPrefix) + " to " + m.URL(toPrefix)
	if err := checkKey(toPrefix); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "%s: %v", what, err)
	}
	objs, err := m.list(ctx, fromPrefix)
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.rel] = o.size
	}
	err = lastLast(ctx, rels(objs), last, func(ctx context.Context, rel string) error {
		from, to := m.key(fromPrefix+"/"+rel), m.key(toPrefix+"/"+rel)
		if err := m.s3.copyObject(ctx, m.bucket, from, to, sizes[rel]); err != nil {
			return stepErr(ctx, ittybit.ErrUploadFailed, "copy "+s3URL(m.bucket, from)+" to "+s3URL(m.bucket, to), err)
		}
		m.s3.published(s3URL(m.bucket, to))
		return nil
	})
	if err != nil {
		return stepErr(ctx, ittybit.ErrUploadFailed, what, err)
	}
	return nil
}

func (m *s3Store) Open(ctx context.Context, key string) (File, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open %q: %w (%v)", key, ErrNotFound, err)
	}
	return m.s3.open(ctx, m.bucket, m.key(key))
}

func (m *s3Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := checkKey(prefix); err != nil {
		return fmt.Errorf("delete %q: %w", prefix, err)
	}
	full := m.key(prefix) + "/"
	pages := s3.NewListObjectsV2Paginator(m.s3.client, &s3.ListObjectsV2Input{Bucket: &m.bucket, Prefix: &full})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("delete %s: %s", m.URL(prefix), describeErr(err))
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]s3types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = s3types.ObjectIdentifier{Key: o.Key}
		}
		// A page holds at most 1000 keys, as many as one DeleteObjects takes.
		out, err := m.s3.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &m.bucket, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("delete %s: %s", m.URL(prefix), describeErr(err))
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %s: %d objects not deleted, first %s: %s %s", m.URL(prefix),
				len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return nil
}

// copyObject copies bucket/from to bucket/to on the server, in parts when
// it is larger than one CopyObject may copy.
func (s *S3) copyObject(ctx context.Context, bucket, from, to string, size int64) error {
	limit, partSize := s.copyLimit, s.copyPartSize
	if limit == 0 {
		limit = defaultCopyLimit
	}
	if partSize == 0 {
		partSize = defaultCopyPartSize
	}
	src := copySource(bucket, from)
	if size <= limit {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: &to, CopySource: &src})
		return err
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &bucket, Key: &to, ContentType: nonEmpty(contentType(to)),
	})
	if err != nil {
		return err
	}
	var ranges []string
	for off := int64(0); off < size; off += partSize {
		ranges = append(ranges, fmt.Sprintf("bytes=%d-%d", off, min(off+partSize, size)-1))
	}
	parts := make([]s3types.CompletedPart, len(ranges))
	idx := make(map[string]int32, len(ranges))
	for i, r := range ranges {
		idx[r] = int32(i + 1)
	}
	err = parallel(ctx, ranges, func(ctx context.Context, r string) error {
		n := idx[r]
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &bucket, Key: &to, UploadId: up.UploadId, PartNumber: &n,
			CopySource: &src, CopySourceRange: &r,
		})
		if err != nil {
			return err
		}
		parts[n-1] = s3types.CompletedPart{PartNumber: &n, ETag: out.CopyPartResult.ETag}
		return nil
	})
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &bucket, Key: &to, UploadId: up.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err != nil {
		// Abort on a fresh context: the caller's may be what was cancelled.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failTimeout)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &to, UploadId: up.UploadId})
		return errors.Join(err, aerr)
	}
	return nil
}

// copySource writes bucket/key as the x-amz-copy-source header wants it:
// URL-encoded, slashes kept.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return bucket + "/" + strings.Join(segs, "/")
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
