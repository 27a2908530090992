package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/encoders"
)

// FuzzDecodeCreate feeds arbitrary POST /tasks bodies through the request
// decoder and encoders.Validate, as createTask does. Nothing may panic;
// every refusal must be a 400 with a kind and a message (never a 500); an
// accepted request must survive a round trip: encoded again and decoded,
// it is the same request (the same Idempotency-Key body hash), and the task
// made from it encodes as JSON. Its seed corpus is in
// testdata/fuzz/FuzzDecodeCreate.
func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{"input":"https://example.com/upload.mov","kind":"video","options":{"width":1280,"height":720},"metadata":{"order":7}}`))
	f.Add([]byte(`{"input":"s3://bucket/in.mov","kind":"adaptive_video","output":"s3://bucket/out/master.m3u8"}`))
	f.Add([]byte(`{"input":"http://127.0.0.1./a.mov","kind":"video","options":null,"output":null,"metadata":null}`))
	f.Add([]byte(`[{"input":1}]`))
	a := &API{cfg: Config{Now: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeCreate(body)
		if err == nil {
			spec := encoders.Spec{Kind: req.Kind, Input: req.Input, Output: req.Output, Options: req.Options}
			err = encoders.Validate(spec, encoders.Policy{})
		}
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
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", body, err)
		}
		req2, err := decodeCreate(again)
		if err != nil {
			t.Fatalf("accepted %q, but not its own encoding %s: %v", body, again, err)
		}
		if h1, h2 := bodyHash(req), bodyHash(req2); h1 != h2 {
			t.Fatalf("%q and its re-encoding %s hash differently: the same request would conflict with itself", body, again)
		}
		seed := a.newSeed(req)
		seedJSON, err := json.Marshal(seed)
		if err != nil {
			t.Fatalf("seed of %q does not encode: %v", body, err)
		}
		var back state.Seed
		if err := json.Unmarshal(seedJSON, &back); err != nil {
			t.Fatalf("seed of %q does not decode: %v", body, err)
		}
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
