package storage_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

func mustS3(tb testing.TB, cfg storage.S3Config) *storage.S3 {
	tb.Helper()
	c, err := storage.NewS3(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// isolateAWS keeps the developer's AWS files and the metadata service out
// of a test that relies on the credential chain.
func isolateAWS(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "ITTYBIT_S3_PATH_STYLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestS3(t *testing.T) {
	isolateAWS(t)
	srv := s3test.Start(t)
	srv.MakeBucket(t, "media")
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("multipart upload of a file larger than a part", func(t *testing.T) {
		c := mustS3(t, srv.Config())
		storage.SetPartSizes(c, 5*mib, 0, 0)
		var read atomic.Int64
		storage.SetSourceHook(c, func(r io.Reader) io.Reader { return &countingReader{r: r, n: &read} })
		data := pattern(12*mib, 5)
		if err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "big.mp4"), data), "s3://media/out/big.mp4"); err != nil {
			t.Fatal(err)
		}
		if read.Load() != int64(len(data)) {
			t.Errorf("the upload read %d bytes of %d", read.Load(), len(data))
		}
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: ptr("media"), Key: ptr("out/big.mp4")})
		if err != nil {
			t.Fatal(err)
		}
		// A multipart object's ETag ends in its part count.
		if etag := strings.Trim(*head.ETag, `"`); !strings.HasSuffix(etag, "-3") {
			t.Errorf("ETag %s: not uploaded in 3 parts", etag)
		}
		if ct := *head.ContentType; ct != "video/mp4" {
			t.Errorf("Content-Type %s, want video/mp4", ct)
		}
		dst := filepath.Join(dir, "dl", "big.mp4")
		n, err := c.Download(ctx, "s3://media/out/big.mp4", dst, 12*mib)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(data)) || !bytes.Equal(readFile(t, dst), data) {
			t.Errorf("downloaded %d bytes, not the uploaded ones", n)
		}
	})

	t.Run("empty file", func(t *testing.T) {
		c := mustS3(t, srv.Config())
		if err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "empty"), nil), "s3://media/empty"); err != nil {
			t.Fatal(err)
		}
		n, err := c.Download(ctx, "s3://media/empty", filepath.Join(dir, "empty.dl"), 10)
		if err != nil || n != 0 || len(readFile(t, filepath.Join(dir, "empty.dl"))) != 0 {
			t.Errorf("Download of an empty object = %d, %v", n, err)
		}
	})

	t.Run("download over maxBytes is input_too_large", func(t *testing.T) {
		c := mustS3(t, srv.Config())
		if err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "mid"), pattern(100_000, 1)), "s3://media/mid.mp4"); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "too-large")
		_, err := c.Download(ctx, "s3://media/mid.mp4", dst, 99_999)
		wantKind(t, err, ittybit.ErrInputTooLarge)
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("a refused download left %s: %v", dst, err)
		}
	})

	t.Run("missing object or bucket is fetch_failed", func(t *testing.T) {
		c := mustS3(t, srv.Config())
		for _, u := range []string{"s3://media/nope.mp4", "s3://no-such-bucket/x.mp4", "s3://media", "https://x/y"} {
			_, err := c.Download(ctx, u, filepath.Join(dir, "missing"), 0)
			wantKind(t, err, ittybit.ErrFetchFailed)
			t.Logf("%s: %v", u, err)
		}
	})

	t.Run("bad credentials say so", func(t *testing.T) {
		cfg := srv.Config()
		cfg.SecretAccessKey = "wrong" + cfg.SecretAccessKey
		c := mustS3(t, cfg)
		err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "small"), []byte("x")), "s3://media/denied")
		wantKind(t, err, ittybit.ErrUploadFailed)
		if !strings.Contains(err.Error(), "check the S3 credentials") {
			t.Errorf("upload error does not point at the credentials: %v", err)
		}
		_, err = c.Download(ctx, "s3://media/mid.mp4", filepath.Join(dir, "denied"), 0)
		wantKind(t, err, ittybit.ErrFetchFailed)
		if !strings.Contains(err.Error(), "check the S3 credentials") {
			t.Errorf("download error does not point at the credentials: %v", err)
		}
	})

	t.Run("no credentials at all say so", func(t *testing.T) {
		cfg := srv.Config()
		cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
		c := mustS3(t, cfg)
		err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "small"), []byte("x")), "s3://media/anon")
		wantKind(t, err, ittybit.ErrUploadFailed)
		if !strings.Contains(err.Error(), "no S3 credentials found") {
			t.Errorf("upload error does not say credentials are missing: %v", err)
		}
	})

	t.Run("the environment configures credentials, endpoint and path style", func(t *testing.T) {
		// A host name, not an IP: the SDK would address the bucket as
		// media.localhost without path style.
		u, _ := url.Parse(srv.Endpoint)
		t.Setenv("AWS_ENDPOINT_URL_S3", "http://localhost:"+u.Port())
		t.Setenv("ITTYBIT_S3_PATH_STYLE", "true")
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		c := mustS3(t, storage.S3Config{})
		var mu sync.Mutex
		var hosts []string
		storage.SetRequestHook(c, func(host string) { mu.Lock(); hosts = append(hosts, host); mu.Unlock() })
		if err := c.Upload(ctx, writeFile(t, filepath.Join(dir, "env"), []byte("env")), "s3://media/env.txt"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Download(ctx, "s3://media/env.txt", filepath.Join(dir, "env.dl"), 0); err != nil {
			t.Fatal(err)
		}
		if len(hosts) == 0 {
			t.Error("no request recorded")
		}
		for _, h := range hosts {
			if h != "localhost:"+u.Port() {
				t.Errorf("a request went to %s, not path-style to localhost", h)
			}
		}
	})

	t.Run("upload dir puts last last", func(t *testing.T) {
		c := mustS3(t, srv.Config())
		src := filepath.Join(dir, "tree")
		writeTree(t, src, hlsTree)
		var mu sync.Mutex
		var order []string
		storage.SetPublishedHook(c, func(loc string) { mu.Lock(); order = append(order, loc); mu.Unlock() })
		if err := c.UploadDir(ctx, src, "s3://media/tasks/t1/", "master.m3u8"); err != nil {
			t.Fatal(err)
		}
		if len(order) != len(hlsTree) || order[len(order)-1] != "s3://media/tasks/t1/master.m3u8" {
			t.Errorf("publication order %v: want %d objects, master.m3u8 last", order, len(hlsTree))
		}
		// The hidden file stayed home.
		if _, err := c.Download(ctx, "s3://media/tasks/t1/.DS_Store", filepath.Join(dir, "ds"), 0); err == nil {
			t.Error("UploadDir uploaded a hidden file")
		}
	})

	t.Run("get dir skips keys it never writes", func(t *testing.T) {
		m := mustOpen(t, "s3://media/managed", srv.Config())
		for _, key := range []string{"managed/tasks/t5/", "managed/tasks/t5/.hidden", "managed/tasks/t5/ok.mp4"} {
			if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: ptr("media"), Key: ptr(key), Body: strings.NewReader("")}); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
		}
		got := filepath.Join(dir, "foreign")
		if err := m.GetDir(ctx, "tasks/t5", got); err != nil {
			t.Fatal(err)
		}
		checkTree(t, got, map[string]string{"ok.mp4": ""})
	})

	t.Run("copy dir goes multipart above the copy limit", func(t *testing.T) {
		srv.MakeBucket(t, "copies")
		m := mustOpen(t, "s3://copies/p", srv.Config())
		storage.SetPartSizes(m, 5*mib, 6*mib, 5*mib)
		big := pattern(12*mib+1, 4)
		small := []byte("#EXTM3U\n")
		tree := filepath.Join(dir, "copytree")
		writeFile(t, filepath.Join(tree, "v.mp4"), big)
		writeFile(t, filepath.Join(tree, "master.m3u8"), small)
		if err := m.PutDir(ctx, "tasks/t1/staged", tree, "master.m3u8"); err != nil {
			t.Fatal(err)
		}
		if err := m.CopyDir(ctx, "tasks/t1/staged", "tasks/t1/out", "master.m3u8"); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readKey(t, m, "tasks/t1/out/v.mp4"), big) || !bytes.Equal(readKey(t, m, "tasks/t1/out/master.m3u8"), small) {
			t.Error("copies differ from their sources")
		}
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: ptr("copies"), Key: ptr("p/tasks/t1/out/v.mp4")})
		if err != nil {
			t.Fatal(err)
		}
		if etag := strings.Trim(*head.ETag, `"`); !strings.HasSuffix(etag, "-3") {
			t.Errorf("ETag %s: not copied in 3 parts", etag)
		}
	})
}

func ptr[T any](v T) *T { return &v }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestParseS3URL(t *testing.T) {
	tests := []struct {
		in          string
		bucket, key string
		bad         bool
	}{
		{in: "s3://media/a/b.mp4", bucket: "media", key: "a/b.mp4"},
		{in: "S3://media/a%20b.mp4", bucket: "media", key: "a b.mp4"},
		{in: "s3://media", bucket: "media"},
		{in: "s3://media/", bucket: "media"},
		{in: "s3://media/prefix/", bucket: "media", key: "prefix/"},
		{in: "s3://my.bucket-1/k", bucket: "my.bucket-1", key: "k"},
		{in: "s3://Media/k", bad: true},
		{in: "s3://me/k", bad: true},
		{in: "s3://media/k?versionId=1", bad: true},
		{in: "s3://media/k#frag", bad: true},
		{in: "s3://user@media/k", bad: true},
		{in: "s3://media:9000/k", bad: true},
		{in: "https://media/k", bad: true},
		{in: "media/k", bad: true},
		{in: "s3://media/%zz", bad: true},
	}
	for _, tt := range tests {
		bucket, key, err := storage.ParseS3URL(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseS3URL(%q) = %q, %q; want an error", tt.in, bucket, key)
			}
			continue
		}
		if err != nil || bucket != tt.bucket || key != tt.key {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", tt.in, bucket, key, err, tt.bucket, tt.key)
		}
	}
}
