package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

// The limits the hostile-media test starts ittybit dev with.
const (
	hostileMaxInput    = 512 << 10 // --max-input-bytes
	hostileIdleTimeout = time.Second
	hostileFetchTime   = 2 * time.Second
)

// TestHostileMedia sends crafted inputs through the whole pipeline of an
// `ittybit dev` process, served from a loopback server: HLS playlists
// disguised as .mp4 and .avi that point at a secret local file (the 2017
// ffmpeg file read), a concat list, image bombs (PNG headers announcing
// 100000×100000 and 16000×16000), a truncated MP4, an empty file, a text
// file, sources over the size cap (declared, and streamed without a
// length), and sources that never finish (stalled, and dripping a byte at a
// time). Each task fails with its contract error kind; the secret's content
// appears nowhere (task JSON, logs, files the process wrote, the output of
// the good task); and a good task after them completes: the agent stays
// healthy.
func TestHostileMedia(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	secretText := "ITTYBIT-SECRET-" + hex.EncodeToString(nonce[:])
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte(secretText+"\nroot:x:0:0:root:/root:/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := clips.Path(t, encoderstest.Silent)
	goodData, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	big := clips.Path(t, encoderstest.Long)
	bigData, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(bigData) <= hostileMaxInput {
		t.Fatalf("the large clip is %d bytes, not over the cap of %d", len(bigData), hostileMaxInput)
	}
	fixtures := map[string][]byte{
		// The 2017 attack: a playlist where media is expected, whose
		// segments are local files; every way of naming them.
		"playlist.mp4": []byte("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n" + secret + "\n#EXT-X-ENDLIST\n"),
		"playlist.avi": []byte("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nconcat:" + good + "|file://" + secret +
			"\n#EXTINF:1.0,\nsubfile,,start,0,end,0,,:" + secret + "\n#EXT-X-ENDLIST\n"),
		"playlist.mov":  []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nfile://" + secret + "\n"),
		"concat.mov":    []byte("ffconcat version 1.0\nfile '" + good + "'\nfile '" + secret + "'\n"),
		"bomb.png":      encoderstest.PNGHeader(100000, 100000),
		"big.png":       encoderstest.PNGHeader(16000, 16000),
		"big-png.mp4":   encoderstest.PNGHeader(16000, 16000),
		"truncated.mp4": goodData[:len(goodData)/3],
		"empty.mp4":     {},
		"text.mp4":      []byte("this is not a video, it is text\n"),
		"good.mp4":      goodData,
	}
	stop := make(chan struct{})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		switch name {
		case "large.mov": // declares its size
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(bigData))
		case "large-chunked.mov": // no length: counted while it streams
			w.Header().Set("Content-Type", "video/quicktime")
			for off := 0; off < len(bigData); off += 32 << 10 {
				if _, err := w.Write(bigData[off:min(off+32<<10, len(bigData))]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		case "stalled.mp4": // a few bytes, then nothing, forever
			w.Header().Set("Content-Length", "100000")
			w.Write(goodData[:1000])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		case "drip.mp4": // a byte every 100 ms, forever: never idle, never done
			w.Header().Set("Content-Length", "100000")
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				if _, err := w.Write(goodData[i%len(goodData) : i%len(goodData)+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-stop:
					return
				case <-tick.C:
				}
			}
		default:
			data, ok := fixtures[name]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
		}
	}))
	t.Cleanup(files.Close)
	t.Cleanup(func() { close(stop) })

	dev := mustDev(t, "--max-input-bytes", fmt.Sprint(hostileMaxInput),
		"--fetch-idle-timeout", hostileIdleTimeout.String(), "--fetch-timeout", hostileFetchTime.String())
	mustReady(t, dev)
	users := client.New(dev.URL(), testAPIKey)

	cases := []struct {
		file string
		kind encoders.Kind
		want ittybit.ErrorKind
	}{
		{"playlist.mp4", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"playlist.avi", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"playlist.mov", encoders.KindAudio, ittybit.ErrInvalidMedia},
		{"concat.mov", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"bomb.png", encoders.KindImage, ittybit.ErrUnsupportedMedia},
		{"big.png", encoders.KindImage, ittybit.ErrUnsupportedMedia},
		{"big-png.mp4", encoders.KindVideo, ittybit.ErrUnsupportedMedia},
		{"truncated.mp4", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"empty.mp4", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"text.mp4", encoders.KindVideo, ittybit.ErrInvalidMedia},
		{"large.mov", encoders.KindVideo, ittybit.ErrInputTooLarge},
		{"large-chunked.mov", encoders.KindVideo, ittybit.ErrInputTooLarge},
		{"stalled.mp4", encoders.KindVideo, ittybit.ErrFetchFailed},
		{"drip.mp4", encoders.KindVideo, ittybit.ErrFetchFailed},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: tc.kind, Input: files.URL + "/" + tc.file}, client.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", tc.file, err)
		}
		ids[i] = task.ID
	}
	var taskJSON [][]byte
	results := make([]string, len(cases))
	for i, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			task := waitTask(t, users, ids[i], 2*time.Minute)
			if task.FinishedAt != nil {
				results[i] = fmt.Sprintf("%s after %d attempt(s), %s", task.Steps[0].Error.Kind, task.Steps[0].Attempt,
					seconds(time.Duration(*task.FinishedAt-task.CreatedAt)*time.Millisecond))
			}
			if task.Status != api.TaskFailed || task.Error == nil || task.Error.Kind != tc.want || task.Error.Message == "" {
				t.Fatalf("task %s %+v, want failed with %s", task.Status, task.Error, tc.want)
			}
			if task.Output != nil {
				t.Errorf("a failed task has an output: %s", *task.Output)
			}
			if s := task.Steps[0]; s.Status != api.StepFailed || s.Error == nil || s.Error.Kind != tc.want {
				t.Errorf("probe step %s %+v, want failed with %s", s.Status, s.Error, tc.want)
			}
			for _, s := range task.Steps[1:] {
				if s.Status != api.StepCancelled || s.Node != nil {
					t.Errorf("step %s %s on %v after a failed probe; want cancelled, never run", s.Kind, s.Status, s.Node)
				}
			}
			if strings.Contains(task.Error.Message, dev.dir) {
				t.Errorf("the error names the agent's files: %s", task.Error.Message)
			}
			t.Logf("%s: %s after %d attempt(s): %s", tc.file, task.Error.Kind, task.Steps[0].Attempt, task.Error.Message)
		})
		r := mustSend(t, "GET", dev.URL()+"/tasks/"+ids[i], nil)
		taskJSON = append(taskJSON, r.Body)
	}

	// The agent is healthy: a good task completes, its output is real.
	task, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: encoders.KindVideo, Input: files.URL + "/good.mp4",
		Options: encoders.Options{Format: "webm"}}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := waitTask(t, users, task.ID, 2*time.Minute)
	if done.Status != api.TaskCompleted || done.Output == nil {
		t.Fatalf("the good task after the hostile ones: %s %+v", done.Status, done.Error)
	}
	out := filepath.Join(t.TempDir(), "out.webm")
	resp, err := http.Get(*done.Output)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := encoderstest.Probe(t, out).Video(); v == nil || v.CodecName != "vp9" {
		t.Errorf("the good task's output: %+v", v)
	}
	list := mustSend(t, "GET", dev.URL()+"/tasks?limit=100", nil)
	taskJSON = append(taskJSON, list.Body, data)

	// The secret is nowhere: not in any task's JSON, not in the process's
	// log, not in any file it wrote (Raft log, work folder, managed
	// storage, the output).
	for i, b := range taskJSON {
		if bytes.Contains(b, []byte(secretText)) || bytes.Contains(b, []byte("root:x:0:0")) {
			t.Errorf("the secret is in answer %d: %s", i, b)
		}
	}
	n := 0
	for _, root := range []string{dev.dir} {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			n++
			b, _ := os.ReadFile(path)
			if bytes.Contains(b, []byte(secretText)) {
				t.Errorf("the secret is in %s", path)
			}
			return nil
		})
	}
	if n == 0 {
		t.Error("found no files of the dev process to search")
	}
	if r := mustSend(t, "GET", dev.URL()+"/readyz", nil); r.Status != http.StatusOK {
		t.Errorf("readyz after the hostile tasks: %s", r)
	}
	f := figures{
		heading: "## TestHostileMedia: crafted inputs through ittybit dev",
		intro: "`test/hostile_media_test.go`. One `ittybit dev` process (`--max-input-bytes 524288 --fetch-idle-timeout 1s\n" +
			"--fetch-timeout 2s`), inputs served from a loopback server. Each row: the error the task failed with, the attempts\n" +
			"of its probe step (fetch_failed is retried, the others are final), and the time from creation to failure.",
	}
	for i, tc := range cases {
		f.add("`"+tc.file+"` ("+string(tc.kind)+")", "%s", results[i])
	}
	f.add("secret file's content found", "nowhere: %d answers (each task's JSON, the listing, the good task's output) and the %d files under the process's folder (its log, the Raft log, managed storage); the work folder is emptied as tasks end", len(taskJSON), n)
	f.add("a good task after them", "completed in %s (vp9 webm, checked with ffprobe)", seconds(time.Duration(*done.FinishedAt-done.CreatedAt)*time.Millisecond))
	f.write(t)
}
