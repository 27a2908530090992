package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/wire"
)

// FuzzDecodeCreate feeds arbitrary POST /tasks bodies through the request
// reader (decoder and encoders.Validate), as createTask reads them.
// Nothing may panic; every refusal must be a 400 with a kind and a message
// (never a 500); an accepted request must survive a round trip: encoded
// again and read, it is the same request (the same Idempotency-Key body
// hash), its seed goes through the log's binary form unchanged, and the
// task made from it encodes as JSON. Its seed corpus is in
// testdata/fuzz/FuzzDecodeCreate.
func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720},"metadata":{"order":7}}`))
	f.Add([]byte(`{"input":"s3://bucket/in.mov","kind":"adaptive_video","output":"s3://bucket/out/master.m3u8"}`))
	f.Add([]byte(`{"input":"http://127.0.0.1./a.mov","kind":"video","options":null,"output":null,"metadata":null}`))
	f.Add([]byte(`[{"input":1}]`))
	a := &API{cfg: Config{Now: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}}
	f.Fuzz(func(t *testing.T, body []byte) {
		post := func(body []byte) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/tasks", bytes.NewReader(body))
		}
		sr, err := a.readCreate(post(body))
		if err != nil {
			e := api.FromError(err)
			if e.Kind == "" || e.Message == "" || api.Status(e.Kind) != http.StatusBadRequest {
				t.Fatalf("refusal %d %+v for %q; want 400 with a kind and a message", api.Status(e.Kind), e, body)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("error body does not encode: %v", err)
			}
			return
		}
		req, _ := decodeCreate(body)
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", body, err)
		}
		sr2, err := a.readCreate(post(again))
		if err != nil {
			t.Fatalf("accepted %q, but not its own encoding %s: %v", body, again, err)
		}
		if sr.BodyHash != sr2.BodyHash {
			t.Fatalf("%q and its re-encoding %s hash differently: the same request would conflict with itself", body, again)
		}
		// Through the log, as the leader writes it and every node reads it.
		a.stamp(&sr.Seed)
		_, seeds, err := wire.ReadBatch(wire.AppendBatch(nil, 1, []state.SeedRequest{sr}))
		if err != nil || len(seeds) != 1 {
			t.Fatalf("seed of %q does not go through the log: %v", body, err)
		}
		back := seeds[0].Seed
		task := back.Task()
		if o1, _ := json.Marshal(task.Options); string(o1) != string(again2(req)) {
			t.Fatalf("options of %q changed through the log: %s, want %s", body, o1, again2(req))
		}
		if len(task.Steps) != 4 || task.Status != api.TaskQueued {
			t.Fatalf("task from %q: %d steps, status %s", body, len(task.Steps), task.Status)
		}
		if _, err := json.Marshal(task); err != nil {
			t.Fatalf("task from %q does not encode: %v", body, err)
		}
	})
}

// again2 is the options of a request as the API echoes them.
func again2(req api.CreateTaskRequest) []byte {
	b, _ := json.Marshal(req.Options)
	return b
}
