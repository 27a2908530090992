package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// httpClient is shared by the tests; its timeout is longer than a server's
// 15 s of forwarding retries.
var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
}

// reply is an HTTP answer, read in full.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// apiError decodes an error body.
func (r reply) apiError(tb testing.TB) api.Error {
	tb.Helper()
	var e api.Error
	if err := json.Unmarshal(r.Body, &e); err != nil {
		tb.Fatalf("error body is not JSON: %v: %s", err, r.Body)
	}
	return e
}

// send makes one request with the test API key unless hdr sets
// Authorization ("" removes it); hdr lists header names and values.
func send(method, url string, body []byte, hdr ...string) (reply, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, err
}

// mustSend is send that fails the test on a transport error.
func mustSend(tb testing.TB, method, url string, body []byte, hdr ...string) reply {
	tb.Helper()
	r, err := send(method, url, body, hdr...)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// mustCreate posts a task and expects 201.
func mustCreate(tb testing.TB, base, body string, hdr ...string) api.Task {
	tb.Helper()
	r := mustSend(tb, "POST", base+"/tasks", []byte(body), hdr...)
	if r.Status != http.StatusCreated {
		tb.Fatalf("POST %s/tasks %s: got %s, want 201", base, body, r)
	}
	var t api.Task
	if err := json.Unmarshal(r.Body, &t); err != nil {
		tb.Fatalf("decode task: %v", err)
	}
	return t
}

// nodeState is a server's GET /internal/state: its own copy, not the
// leader's.
type nodeState struct {
	Node   string `json:"node"`
	Leader bool   `json:"leader"`
	Tasks  int    `json:"tasks"`
	Hash   string `json:"hash"`
}

func getState(p *proc) (nodeState, error) {
	var s nodeState
	r, err := send("GET", p.URL()+"/internal/state", nil, "Authorization", "Bearer "+testNodeToken)
	if err != nil {
		return s, err
	}
	if r.Status != http.StatusOK {
		return s, fmt.Errorf("GET /internal/state: %s", r)
	}
	return s, json.Unmarshal(r.Body, &s)
}

// waitSameState waits until every process reports the same task count and
// hash, and returns it.
func waitSameState(tb testing.TB, timeout time.Duration, ps ...*proc) nodeState {
	tb.Helper()
	var first nodeState
	wait.For(tb, "the same state on every node", timeout, func() error {
		var err error
		if first, err = getState(ps[0]); err != nil {
			return err
		}
		for _, p := range ps[1:] {
			s, err := getState(p)
			if err != nil {
				return err
			}
			if s.Tasks != first.Tasks || s.Hash != first.Hash {
				return fmt.Errorf("%s has %d tasks (hash %.12s), %s has %d (hash %.12s)", ps[0].name, first.Tasks, first.Hash, p.name, s.Tasks, s.Hash)
			}
		}
		return nil
	})
	return first
}

// waitState waits until every process reports want's task count and
// hash, as after a restart, when all nodes agree on an empty state before
// they replay their logs.
func waitState(tb testing.TB, want nodeState, timeout time.Duration, ps ...*proc) {
	tb.Helper()
	wait.For(tb, fmt.Sprintf("%d tasks (hash %.12s) on every node", want.Tasks, want.Hash), timeout, func() error {
		for _, p := range ps {
			s, err := getState(p)
			if err != nil {
				return err
			}
			if s.Tasks != want.Tasks || s.Hash != want.Hash {
				return fmt.Errorf("%s has %d tasks (hash %.12s)", p.name, s.Tasks, s.Hash)
			}
		}
		return nil
	})
}

// listAll walks GET /tasks?order=asc page by page with after cursors and
// returns every task's JSON, oldest first.
func listAll(tb testing.TB, base string) []json.RawMessage {
	tb.Helper()
	var out []json.RawMessage
	after := ""
	for {
		url := base + "/tasks?order=asc&limit=100"
		if after != "" {
			url += "&after=" + after
		}
		r := mustSend(tb, "GET", url, nil)
		if r.Status != http.StatusOK {
			tb.Fatalf("GET %s: %s", url, r)
		}
		var page struct {
			Data    []json.RawMessage `json:"data"`
			HasMore bool              `json:"has_more"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			tb.Fatal(err)
		}
		out = append(out, page.Data...)
		if !page.HasMore {
			return out
		}
		if len(page.Data) == 0 {
			tb.Fatalf("GET %s: has_more with an empty page", url)
		}
		var last struct{ ID string }
		_ = json.Unmarshal(page.Data[len(page.Data)-1], &last)
		after = last.ID
	}
}
