package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// bodyTestTimeout is the read timeout of these tests: long enough that a
// request sent whole on loopback never meets it, short enough to wait out.
const bodyTestTimeout = 300 * time.Millisecond

// startServer serves a on loopback as NewServer configures its server.
func startServer(t *testing.T, a *API) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(a)
	srv.Config = a.NewServer()
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// createBody is a valid POST /tasks body.
const createBody = `{"input":"https://example.com/a.mov","kind":"video"}`

// rawRequest opens a connection to srv and writes head (a request's line
// and headers, without the blank line that ends them) and then body.
func rawRequest(t *testing.T, srv *httptest.Server, head, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, head+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readAnswer reads one response from br, failing after limit.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader, limit time.Duration) (*http.Response, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", limit, err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b, time.Since(start)
}

// wantClosed fails unless the server closes c within limit.
func wantClosed(t *testing.T, c net.Conn, br *bufio.Reader, limit time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the server kept the connection open (read: %v), want it closed within %s", err, limit)
	}
}

// TestBodyTimeout: a client that sends its headers and then stalls, or
// sends its body a little at a time, gets 408 request_timeout once the
// read timeout has passed, and its connection is closed; so is one whose
// request a handler refused without reading the body. Nothing of a
// timed-out create is stored.
func TestBodyTimeout(t *testing.T) {
	a := mustAPI(t, func(c *Config) { c.ReadTimeout = bodyTestTimeout })
	srv := startServer(t, a)
	head := func(method, path string, length int) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d", method, path, withKey, length)
	}

	t.Run("stalled", func(t *testing.T) {
		c, br := rawRequest(t, srv, head("POST", "/tasks", len(createBody)), createBody[:10])
		res, b, took := readAnswer(t, c, br, 10*bodyTestTimeout)
		wantTimeoutAnswer(t, res, b)
		if took < bodyTestTimeout/2 {
			t.Errorf("answered after %s, before the read timeout of %s", took, bodyTestTimeout)
		}
		wantClosed(t, c, br, 10*bodyTestTimeout)
	})

	t.Run("a byte at a time", func(t *testing.T) {
		c, br := rawRequest(t, srv, head("POST", "/tasks", len(createBody)), "")
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 50 ms: the body would take 2.6 s
			for i := range len(createBody) {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte{createBody[i]}); err != nil {
					return
				}
			}
		}()
		res, b, _ := readAnswer(t, c, br, 10*bodyTestTimeout)
		wantTimeoutAnswer(t, res, b)
	})

	t.Run("refused without reading the body", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{{"POST", "/no-such-route"}, {"PUT", "/tasks"}} {
			c, br := rawRequest(t, srv, head(tc.method, tc.path, 1000), "{")
			res, _, _ := readAnswer(t, c, br, 10*bodyTestTimeout)
			if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: got %d, want 404 or 405", tc.method, tc.path, res.StatusCode)
			}
			// The server waits for the rest of the body (to reuse the
			// connection) only until the read timeout.
			wantClosed(t, c, br, 10*bodyTestTimeout)
		}
	})

	if n := len(listAll(t, a)); n != 0 {
		t.Errorf("%d tasks stored from bodies that never arrived, want 0", n)
	}

	t.Run("a whole body, then the next request on the connection", func(t *testing.T) {
		c, br := rawRequest(t, srv, head("POST", "/tasks", len(createBody)), createBody)
		if res, b, _ := readAnswer(t, c, br, 10*time.Second); res.StatusCode != http.StatusCreated {
			t.Fatalf("got %d %s, want 201", res.StatusCode, b)
		}
		// Idle past the read timeout: the deadline was the first request's.
		time.Sleep(2 * bodyTestTimeout)
		if _, err := io.WriteString(c, head("POST", "/tasks", len(createBody))+"\r\n\r\n"+createBody); err != nil {
			t.Fatal(err)
		}
		if res, b, _ := readAnswer(t, c, br, 10*time.Second); res.StatusCode != http.StatusCreated {
			t.Fatalf("second request on the connection: got %d %s, want 201", res.StatusCode, b)
		}
	})
}

// wantTimeoutAnswer fails unless res is 408 request_timeout, with a
// message that names the timeout.
func wantTimeoutAnswer(t *testing.T, res *http.Response, b []byte) {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(b, &e); err != nil || res.StatusCode != http.StatusRequestTimeout || e.Kind != ittybit.ErrRequestTimeout {
		t.Fatalf("got %d %s, want 408 request_timeout", res.StatusCode, b)
	}
	if !strings.Contains(e.Message, bodyTestTimeout.String()) {
		t.Errorf("message %q does not name the timeout %s", e.Message, bodyTestTimeout)
	}
}

// listAll lists the tasks of the test key.
func listAll(t *testing.T, a *API) []json.RawMessage {
	t.Helper()
	w := serve(a, "GET", "/tasks?limit=100", "", withKey)
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &page) != nil {
		t.Fatalf("GET /tasks: %d %s", w.Code, w.Body)
	}
	return page.Data
}

// slowCreates commits creates through the real store after a delay.
type slowCreates struct {
	Store
	delay time.Duration
}

func (s slowCreates) CreateTasks(ctx context.Context, reqs []state.SeedRequest) ([]state.CreateResult, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.delay):
	}
	return s.Store.CreateTasks(ctx, reqs)
}

// TestBodyTimeoutLifted: once the body has arrived, the handler may take
// longer than the read timeout (a create waiting for its commit): the
// request's context is not cancelled, and the answer is written. So may
// a request without a body (the live feed).
func TestBodyTimeoutLifted(t *testing.T) {
	a := mustAPI(t, func(c *Config) {
		c.ReadTimeout = bodyTestTimeout
		c.Store = slowCreates{Store: c.Store, delay: 3 * bodyTestTimeout}
	})
	srv := startServer(t, a)
	req, err := http.NewRequest("POST", srv.URL+"/tasks", strings.NewReader(createBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", withKey)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("a create that took %s after its body: got %d %s, want 201", 3*bodyTestTimeout, res.StatusCode, b)
	}

	// The live feed, open for longer than the read timeout, still brings
	// the next event.
	req, err = http.NewRequest("GET", srv.URL+"/events/stream?after=latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", withKey)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	feed, err := srv.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Body.Close()
	time.Sleep(3 * bodyTestTimeout)
	if w := serve(a, "POST", "/tasks", createBody, withKey); w.Code != http.StatusCreated {
		t.Fatalf("POST /tasks: %d %s", w.Code, w.Body)
	}
	sc := bufio.NewScanner(feed.Body)
	for sc.Scan() {
		if sc.Text() == "event: task.created" {
			return
		}
	}
	t.Fatalf("the feed ended without the event (%v), want it open past the read timeout", sc.Err())
}

// TestFeedStall: a live feed whose client stops reading (its receive
// window closed) is ended once a write has waited WriteStall, rather than
// held for good; the client, draining what reached it, finds the end.
func TestFeedStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	a := mustAPI(t, func(c *Config) { c.WriteStall = stall })
	// Small socket buffers at both ends, whatever the machine's defaults.
	srv := httptest.NewUnstartedServer(a)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Config = a.NewServer()
	srv.Start()
	defer srv.Close()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return setBuffer(rc, syscall.SO_RCVBUF)
	}}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", withKey); err != nil {
		t.Fatal(err)
	}
	// Events of large tasks, 2 MiB, far more than the socket buffers
	// hold, while the client reads nothing.
	body := `{"input":"https://example.com/a.mov","kind":"video","metadata":{"pad":"` + strings.Repeat("x", 16<<10) + `"}}`
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 16 {
				if w := serve(a, "POST", "/tasks", body, withKey); w.Code != http.StatusCreated {
					t.Errorf("POST /tasks: %d %s", w.Code, w.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	time.Sleep(5 * stall)
	// The server has given up: what is buffered drains, then the end.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatalf("the feed was still open after %d bytes (%v): a client that reads nothing held it", n, err)
	}
	if n >= 128*(16<<10) {
		t.Errorf("read %d bytes, every event: the server never waited on the client", n)
	}
}

// smallBuffers is a listener whose connections have small send buffers.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err == nil {
		err = setBuffer(rc, syscall.SO_SNDBUF)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// setBuffer sets a socket's buffer (SO_SNDBUF, SO_RCVBUF) to 16 KiB.
func setBuffer(rc syscall.RawConn, which int) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, which, 16<<10) })
	return errors.Join(err, serr)
}

// startSmall serves a as NewServer configures its server, on a listener
// whose connections have small send buffers; closed tells whether the
// server has closed the connection of a client at an address.
func startSmall(t *testing.T, a *API) (srv *httptest.Server, closed func(client string) bool) {
	t.Helper()
	var gone sync.Map // client address → true
	srv = httptest.NewUnstartedServer(a)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Config = a.NewServer()
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			gone.Store(c.RemoteAddr().String(), true)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func(client string) bool { _, ok := gone.Load(client); return ok }
}

// dialSmall connects to srv with a small receive buffer.
func dialSmall(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return setBuffer(rc, syscall.SO_RCVBUF)
	}}
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitClosed fails unless the server closes c within 20 s, while its
// client reads nothing.
func waitClosed(t *testing.T, c net.Conn, closed func(string) bool, what string) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !closed(c.LocalAddr().String()); {
		if time.Now().After(end) {
			t.Fatalf("%s: the server still held the connection after 20 s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

// slowReader reads at most step bytes a read, after a pause.
type slowReader struct {
	r     io.Reader
	step  int
	pause time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause) // the client's pace, not a wait for a condition
	return s.r.Read(p[:min(len(p), s.step)])
}

// TestWriteStall: a client that stops taking a response has its
// connection closed after WriteStall, whatever the response (answers to
// requests sent without reading any, a page of tasks, a download, the
// live feed has its own test); one that reads slowly but steadily gets
// every byte, however much longer than WriteStall that takes in all.
func TestWriteStall(t *testing.T) {
	const stall = 300 * time.Millisecond
	pad := strings.Repeat("x", 16<<10)
	body := `{"input":"https://example.com/a.mov","kind":"video","metadata":{"pad":"` + pad + `"}}`
	a := mustAPI(t, func(c *Config) { c.WriteStall = stall })
	for range 100 {
		if w := serve(a, "POST", "/tasks", body, withKey); w.Code != http.StatusCreated {
			t.Fatalf("POST /tasks: %d %s", w.Code, w.Body)
		}
	}
	srv, closed := startSmall(t, a)
	page := fmt.Sprintf("GET /tasks?limit=100 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n", withKey)

	t.Run("pipelined", func(t *testing.T) {
		c := dialSmall(t, srv)
		go func() { // requests, as long as the server reads them
			for {
				if _, err := io.WriteString(c, strings.Repeat("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 64)); err != nil {
					return
				}
			}
		}()
		waitClosed(t, c, closed, "requests sent without reading the answers")
	})
	t.Run("stalled page", func(t *testing.T) {
		c := dialSmall(t, srv)
		if _, err := io.WriteString(c, page); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c, closed, "a page of 1.6 MiB, not read")
	})
	t.Run("slow page", func(t *testing.T) {
		c := dialSmall(t, srv)
		if _, err := io.WriteString(c, page); err != nil {
			t.Fatal(err)
		}
		// 16 KiB each 10 ms: a piece of 64 KiB in 40 ms, the page of
		// 1.6 MiB in more than a second.
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(slowReader{c, 16 << 10, 10 * time.Millisecond}), nil)
		if err != nil {
			t.Fatal(err)
		}
		var list api.TaskList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatalf("the page, read slowly, broke off after %s: %v", time.Since(start), err)
		}
		if len(list.Data) != 100 || time.Since(start) < 2*stall {
			t.Errorf("read %d tasks in %s; want 100, in more than %s (the test reads slowly)", len(list.Data), time.Since(start), 2*stall)
		}
	})
}

// TestDownloadStall: a file sent through sendfile (GET /files/) goes out
// in pieces, each under its own write deadline: a client that takes
// nothing is dropped after WriteStall, one that reads slowly but steadily
// gets the whole file.
func TestDownloadStall(t *testing.T) {
	const stall = 2 * time.Second
	const size = 6 << 20
	a := mustAPI(t, func(c *Config) { c.WriteStall = stall })
	path := t.TempDir() + "/blob"
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a.Handle("GET /blob", AuthNone, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "blob", time.Time{}, f)
	}))
	srv, closed := startSmall(t, a)

	t.Run("stalled", func(t *testing.T) {
		c := dialSmall(t, srv)
		if _, err := io.WriteString(c, "GET /blob HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c, closed, "a download, not read")
	})
	t.Run("slow", func(t *testing.T) {
		c := dialSmall(t, srv)
		if _, err := io.WriteString(c, "GET /blob HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// 16 KiB each 10 ms: a piece of 256 KiB in 160 ms, the file in
		// more than 3.8 s.
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(slowReader{c, 16 << 10, 10 * time.Millisecond}), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("the download, read slowly, broke off after %d bytes and %s: %v", len(got), time.Since(start), err)
		}
		if !bytes.Equal(got, data) || time.Since(start) < stall {
			t.Errorf("read %d bytes (equal: %v) in %s; want the file's %d, in more than %s", len(got), bytes.Equal(got, data), time.Since(start), size, stall)
		}
	})
}
