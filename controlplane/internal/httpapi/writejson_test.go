package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

// TestWriteTask: a task is answered with the bytes json.Encoder writes for
// it, through api.Task's own encoder, by pointer or by value; one that
// encoding/json refuses is answered as before.
func TestWriteTask(t *testing.T) {
	w := encoders.Dimension{Pixels: 1280}
	task := api.Task{ID: "task_1", Object: "task", Kind: encoders.KindVideo, Input: "https://example.com/a<b>.mov",
		Options: encoders.Options{Width: &w, Format: "mp4"}, Metadata: json.RawMessage(`{ "order" : 7 }`), Status: api.TaskQueued,
		Steps: []api.Step{{ID: "step_1", Object: "step", Kind: "probe", Options: json.RawMessage("{}"), Status: api.StepWaiting}}}
	nan := math.NaN()
	bad := task
	bad.Steps = []api.Step{{ID: "step_1", Progress: &nan}}
	for name, v := range map[string]any{"pointer": &task, "value": task, "refused": &bad} {
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(v)
		rec := httptest.NewRecorder()
		writeJSON(rec, 201, v)
		if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q", name, rec.Code, rec.Header().Get("Content-Type"))
		}
		if got := rec.Body.String(); got != want.String() {
			t.Errorf("%s:\n%s\njson.Encoder:\n%s", name, got, want.String())
		}
	}
}
