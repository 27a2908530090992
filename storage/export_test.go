package storage

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Test hooks for the external test package. x is a *S3 or a Managed from
// OpenManaged.

func hooksOf(x any) *hooks {
	switch v := x.(type) {
	case *S3:
		return &v.hooks
	case *s3Store:
		return &v.s3.hooks
	case *localStore:
		return &v.hooks
	}
	panic("no hooks in " + "the given value")
}

// SetSourceHook wraps what uploads and Puts read from local files.
func SetSourceHook(x any, fn func(io.Reader) io.Reader) { hooksOf(x).source = fn }

// SetPublishedHook is called with each object's location once visible.
func SetPublishedHook(x any, fn func(location string)) { hooksOf(x).published = fn }

// SetPartSizes sets the multipart part size of uploads and downloads, and
// the size above which copies go multipart, in parts of copyPart. x is a
// *S3 or an S3 Managed.
func SetPartSizes(x any, part, copyLimit, copyPart int64) {
	s, ok := x.(*S3)
	if !ok {
		s = x.(*s3Store).s3
	}
	s.partSize, s.copyLimit, s.copyPartSize = part, copyLimit, copyPart
}

// SetRequestHook calls fn with the host of every request s makes.
func SetRequestHook(s *S3, fn func(host string)) {
	o := s.client.Options()
	o.HTTPClient = hostRecorder{next: o.HTTPClient, fn: fn}
	s.client = s3.New(o)
	s.tm = transfermanager.New(s.client, tmDefaults)
}

type hostRecorder struct {
	next s3.HTTPClient
	fn   func(string)
}

func (h hostRecorder) Do(r *http.Request) (*http.Response, error) {
	h.fn(r.URL.Host)
	return h.next.Do(r)
}
