// Package s3test runs a real S3 server for tests: versitygw
// (github.com/versity/versitygw, installed by `make deps`) with its posix
// backend on a temporary folder, on a free loopback port, with random
// credentials. It is test support: it starts a process, and only tests
// import it.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ittybit-oss/ittybit/storage"
)

// Version is the versitygw release the Makefile installs.
const Version = "v1.8.0"

const region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's base URL ("http://127.0.0.1:PORT").
	Endpoint string
	// AccessKey and SecretKey are the root account's credentials.
	AccessKey string
	SecretKey string
	// Dir is the posix backend's root: one folder per bucket.
	Dir string

	bin        string
	posixFlags []string // after "posix", before Dir
	stderr     *syncBuffer
	// stop kills the running process and waits for it to exit; calling
	// it again does nothing.
	stop func()
}

// Start launches versitygw and waits until it answers. The server is
// killed when tb's test ends. A missing versitygw binary fails the test
// with what to run: these tests are never skipped.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := findBinary()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		AccessKey: "ittybit" + strings.ToLower(rand.Text()[:12]),
		SecretKey: rand.Text() + rand.Text(),
		Dir:       tb.TempDir(),
		bin:       bin,
	}
	var sidecar []string
	for attempt := 0; ; attempt++ {
		addr, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		s.posixFlags = sidecar
		err = s.start(addr)
		if err == nil {
			// Restart replaces the process: stop whichever runs last.
			tb.Cleanup(func() { s.stop() })
			return s
		}
		switch {
		case strings.Contains(err.Error(), "xattrs are not supported") && sidecar == nil:
			// Filesystems without user xattrs (old tmpfs) keep metadata
			// in a sidecar folder instead.
			sidecar = []string{"--sidecar", tb.TempDir()}
		case strings.Contains(err.Error(), "address already in use") && attempt < 5:
			// Another process took the free port first; pick another.
		default:
			tb.Fatal(err)
		}
	}
}

// Restart stops the server and starts it again on the same port and
// folder with new root credentials (as when a provider rotates an
// account's keys): requests signed with the old ones are refused from then
// on. It fails the test when the server does not come back.
func (s *Server) Restart(tb testing.TB, accessKey, secretKey string) {
	tb.Helper()
	if accessKey == "" || secretKey == "" {
		tb.Fatal("s3test: Restart needs a non-empty access key and secret key")
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" || s.stop == nil {
		tb.Fatalf("s3test: Restart works on a server from s3test.Start, not on one with endpoint %q and no process of its own", s.Endpoint)
	}
	s.stop()
	s.AccessKey, s.SecretKey = accessKey, secretKey
	for attempt := 0; ; attempt++ {
		err := s.start(u.Host)
		if err == nil {
			return
		}
		// The port can take a moment to free; another process may also
		// have taken it, which no retry mends.
		if !strings.Contains(err.Error(), "address already in use") || attempt >= 50 {
			tb.Fatalf("s3test: restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start launches versitygw on addr with s's credentials and posix flags,
// waits until it answers and sets s.stop to kill it.
func (s *Server) start(addr string) error {
	s.Endpoint = "http://" + addr
	args := append([]string{"--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", region, "--quiet", "posix"}, s.posixFlags...)
	args = append(args, s.Dir)
	cmd := exec.Command(s.bin, args...)
	s.stderr = &syncBuffer{}
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	cmd.Env = append(os.Environ(), "VGW_LOG_LEVEL=silent")
	setParentDeath(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := sync.OnceFunc(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited before answering (%v): %s", err, strings.TrimSpace(s.stderr.String()))
		case <-deadline:
			stop()
			return fmt.Errorf("versitygw did not answer on %s within 20s: %s", addr, strings.TrimSpace(s.stderr.String()))
		case <-tick.C:
		}
		resp, err := http.Get(s.Endpoint + "/")
		if err != nil {
			continue
		}
		resp.Body.Close()
		// Any answer (403 without credentials) means it is serving.
		s.stop = stop
		return nil
	}
}

// Config returns the storage configuration that reaches this server:
// its endpoint, path-style addressing and static credentials.
func (s *Server) Config() storage.S3Config {
	return storage.S3Config{
		Endpoint: s.Endpoint, Region: region, PathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
	}
}

// Client returns a plain SDK client for this server, for tests that look
// at objects behind the storage package's back.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// MakeBucket creates bucket name or fails the test.
func (s *Server) MakeBucket(tb testing.TB, name string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		tb.Fatalf("create bucket %s: %v (versitygw said: %s)", name, err, strings.TrimSpace(s.stderr.String()))
	}
}

// findBinary looks for versitygw on PATH, then where `go install` puts it:
// $GOBIN, then each GOPATH's bin (GOPATH/bin is often not on PATH).
func findBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	// `go env -w` settings live in go's own config file; ask go.
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, gp := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	var tried []string
	for _, d := range dirs {
		if slices.Contains(tried, d) {
			continue
		}
		tried = append(tried, d)
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found on PATH or in " + strings.Join(tried, ", ") +
		": run `make deps` or `go install github.com/versity/versitygw/cmd/versitygw@" + Version + "`")
}

// freePort returns a loopback address with a port free at the time of the
// call.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil // enough to say what went wrong
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
