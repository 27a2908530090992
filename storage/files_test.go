package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/storage"
)

// filesServer serves m as the control plane does: FilesHandler on
// "GET /files/" of a ServeMux, with a clock the test sets.
func filesServer(t *testing.T, m storage.Managed, now time.Time) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /files/", storage.FilesHandler(m, testSigner, func() time.Time { return now }))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func wantAPIError(t *testing.T, resp *http.Response, body []byte, status int, kind string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	var e struct{ Kind, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Kind != kind || e.Message == "" {
		t.Errorf("body %s: want {\"kind\":%q,\"message\":…}", body, kind)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %s", ct)
	}
}

func TestFilesHandler(t *testing.T) {
	ctx := context.Background()
	exp := t0.Add(time.Hour)
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			m := b.open(t)
			src := filepath.Join(t.TempDir(), "out")
			writeTree(t, src, hlsTree)
			video := pattern(1*mib+17, 6)
			writeFile(t, filepath.Join(src, "video.mp4"), video)
			if err := m.PutDir(ctx, "tasks/t1", src, "master.m3u8"); err != nil {
				t.Fatal(err)
			}
			srv := filesServer(t, m, t0)
			master := testSigner.Path("tasks/t1/master.m3u8", exp)
			base := srv.URL + master[:strings.LastIndex(master, "/")+1]

			t.Run("serves the signed file", func(t *testing.T) {
				resp, body := get(t, "GET", srv.URL+master)
				if resp.StatusCode != 200 || string(body) != hlsTree["master.m3u8"] {
					t.Fatalf("%d %q", resp.StatusCode, body)
				}
				for h, want := range map[string]string{
					"Content-Type":           "application/vnd.apple.mpegurl",
					"X-Content-Type-Options": "nosniff",
					"Accept-Ranges":          "bytes",
					"Cache-Control":          "private, max-age=3600",
				} {
					if got := resp.Header.Get(h); got != want {
						t.Errorf("%s: %q, want %q", h, got, want)
					}
				}
			})

			t.Run("relative references resolve under the same signature", func(t *testing.T) {
				for _, rel := range []string{"720p/index.m3u8", "720p/seg1.m4s", "360p/init.mp4"} {
					resp, body := get(t, "GET", base+rel)
					if resp.StatusCode != 200 || string(body) != hlsTree[rel] {
						t.Errorf("%s: %d %q", rel, resp.StatusCode, body)
					}
				}
			})

			t.Run("ranges", func(t *testing.T) {
				resp, body := get(t, "GET", base+"video.mp4", "Range", "bytes=1048400-1048499")
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, video[1048400:1048500]) {
					t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
				}
				if cr := resp.Header.Get("Content-Range"); cr != "bytes 1048400-1048499/1048593" {
					t.Errorf("Content-Range %q", cr)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
					t.Errorf("Content-Type %q", ct)
				}
				resp, body = get(t, "GET", base+"video.mp4", "Range", "bytes=-10")
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, video[len(video)-10:]) {
					t.Errorf("suffix range: %d, %d bytes", resp.StatusCode, len(body))
				}
				resp, body = get(t, "GET", base+"video.mp4")
				if resp.StatusCode != 200 || !bytes.Equal(body, video) {
					t.Errorf("whole file: %d, %d bytes", resp.StatusCode, len(body))
				}
			})

			t.Run("head", func(t *testing.T) {
				resp, body := get(t, "HEAD", base+"video.mp4")
				if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(video)) {
					t.Errorf("%d, length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
				}
			})

			t.Run("refusals", func(t *testing.T) {
				expired := filesServer(t, m, exp.Add(time.Second))
				resp, body := get(t, "GET", expired.URL+master)
				wantAPIError(t, resp, body, http.StatusForbidden, "forbidden")

				tampered := strings.Replace(master, "/tasks/t1/", "/tasks/t2/", 1)
				resp, body = get(t, "GET", srv.URL+tampered)
				wantAPIError(t, resp, body, http.StatusForbidden, "forbidden")

				resp, body = get(t, "GET", srv.URL+strings.Replace(master, "/files/", "/files/x", 1))
				wantAPIError(t, resp, body, http.StatusForbidden, "forbidden")

				resp, body = get(t, "GET", base+"nope.mp4")
				wantAPIError(t, resp, body, http.StatusNotFound, "not_found")

				// A folder is not listed.
				resp, body = get(t, "GET", base+"720p")
				wantAPIError(t, resp, body, http.StatusNotFound, "not_found")
				resp, body = get(t, "GET", base+"720p/")
				wantAPIError(t, resp, body, http.StatusForbidden, "forbidden")
			})

			t.Run("dot dot is refused, not cleaned into another prefix", func(t *testing.T) {
				h := storage.FilesHandler(m, testSigner, func() time.Time { return t0 })
				for _, p := range []string{"../t2/master.m3u8", "720p/../master.m3u8", "./master.m3u8"} {
					req := httptest.NewRequest("GET", "/", nil)
					req.URL.Path = master[:strings.LastIndex(master, "/")+1] + p
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					wantAPIError(t, rec.Result(), rec.Body.Bytes(), http.StatusForbidden, "forbidden")
				}
			})

			t.Run("only GET and HEAD", func(t *testing.T) {
				h := storage.FilesHandler(m, testSigner, func() time.Time { return t0 })
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("DELETE", master, nil))
				wantAPIError(t, rec.Result(), rec.Body.Bytes(), http.StatusMethodNotAllowed, "method_not_allowed")
			})
		})
	}
}

func TestFilesContentTypes(t *testing.T) {
	ctx := context.Background()
	m := mustOpen(t, t.TempDir(), storage.S3Config{})
	srv := filesServer(t, m, t0)
	src := writeFile(t, filepath.Join(t.TempDir(), "f"), []byte("<html><script>alert(1)</script>"))
	for ext, want := range map[string]string{
		".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
		".webm": "video/webm", ".mov": "video/quicktime", ".mp3": "audio/mpeg", ".aac": "audio/aac",
		".ogg": "audio/ogg", ".opus": "audio/ogg; codecs=opus", ".wav": "audio/wav", ".flac": "audio/flac",
		".jpg": "image/jpeg", ".JPG": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
		".avif": "image/avif", ".html": "application/octet-stream", "": "application/octet-stream",
	} {
		key := "tasks/t1/file" + ext
		if err := m.Put(ctx, key, src); err != nil {
			t.Fatal(err)
		}
		resp, _ := get(t, "GET", srv.URL+testSigner.Path(key, t0.Add(time.Minute)))
		if got := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || got != want {
			t.Errorf("%s: %d %q, want %q", key, resp.StatusCode, got, want)
		}
	}
}
