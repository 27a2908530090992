package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"strconv"
	"time"
)

// FilesHandler serves GET and HEAD of signed /files/ paths (see Signer)
// from m: ranges and conditional requests through http.ServeContent, the
// media type from the file's extension (application/octet-stream for
// others, never sniffed), cacheable privately until the signature expires.
// It answers 403 {"kind":"forbidden"} for a bad or expired signature and
// 404 {"kind":"not_found"} for a missing file or a folder: it never lists
// one. Mount it on the full path ("GET /files/"), not behind StripPrefix.
// now is the clock; nil means time.Now.
func FilesHandler(m Managed, s Signer, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	h := &filesHandler{m: m, s: s, now: now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.serve(w, r); err != nil {
			writeFilesError(w, err)
		}
	})
}

type filesHandler struct {
	m   Managed
	s   Signer
	now func() time.Time
}

// filesError is an answer other than the file: a status and the API's
// error body.
type filesError struct {
	status  int
	kind    string
	message string
}

func (e *filesError) Error() string { return e.kind + ": " + e.message }

func (h *filesHandler) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &filesError{http.StatusMethodNotAllowed, "method_not_allowed", r.Method + " is not allowed; files are read with GET or HEAD"}
	}
	now := h.now()
	key, expires, err := h.s.verify(r.URL.Path, now)
	if err != nil {
		return &filesError{http.StatusForbidden, "forbidden", err.Error()}
	}
	f, err := h.m.Open(r.Context(), key)
	if errors.Is(err, ErrNotFound) {
		return &filesError{http.StatusNotFound, "not_found", "no such file: " + key}
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", key, err)
	}
	defer f.Close()
	hd := w.Header()
	ct := contentType(key)
	if ct == "" {
		ct = "application/octet-stream"
	}
	hd.Set("Content-Type", ct)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// Players on other origins (hls.js) fetch playlists and segments with
	// XHR; the signed path is the credential, not the origin.
	hd.Set("Access-Control-Allow-Origin", "*")
	maxAge := int64(math.Floor(expires.Sub(now).Seconds()))
	hd.Set("Cache-Control", "private, max-age="+strconv.FormatInt(max(maxAge, 0), 10))
	http.ServeContent(w, r, path.Base(key), f.ModTime(), f)
	return nil
}

// writeFilesError writes err as the API's JSON error body: a *filesError
// as it says, anything else as 500 internal.
func writeFilesError(w http.ResponseWriter, err error) {
	fe, ok := errors.AsType[*filesError](err)
	if !ok {
		fe = &filesError{http.StatusInternalServerError, "internal", err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(fe.status)
	json.NewEncoder(w).Encode(map[string]string{"kind": fe.kind, "message": fe.message})
}
