// Package console serves the web console under /ui/: pages and scripts
// embedded in the binary, a sign-in that exchanges an API key for a
// session cookie, and the option tables of the new-task form. The pages
// call the API itself, with the session cookie and its CSRF token.
package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/internal/httpapi"
	"github.com/ittybit-oss/ittybit/encoders"
)

//go:embed static
var static embed.FS

// pages are the two HTML documents: the sign-in form, and the shell every
// console page loads (its script draws the page the path names).
var pages = template.Must(template.ParseFS(static, "static/signin.html", "static/app.html"))

// CSP is the console's Content-Security-Policy: its own scripts and
// styles only (no inline code), results from any https origin (S3) or
// this one, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; " +
	"media-src 'self' blob: https:; connect-src 'self' https:; worker-src 'self' blob:; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Register serves the console on a's mux.
func Register(a *httpapi.API) {
	c := &console{api: a}
	assets, _ := fs.Sub(static, "static/assets")
	files := http.StripPrefix("/ui/assets/", http.FileServerFS(assets))
	a.Handle("GET /ui/assets/", httpapi.AuthNone, secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	a.Handle("GET /ui/signin", httpapi.AuthNone, secure(http.HandlerFunc(c.signinPage)))
	a.Handle("POST /ui/session", httpapi.AuthNone, secure(http.HandlerFunc(c.signIn)))
	a.Handle("DELETE /ui/session", httpapi.AuthNone, secure(http.HandlerFunc(c.signOut)))
	a.Handle("GET /ui/options.json", httpapi.AuthSession, secure(http.HandlerFunc(c.options)))
	a.Handle("GET /ui/", httpapi.AuthSession, secure(http.HandlerFunc(c.shell)))
	a.Handle("GET /ui", httpapi.AuthNone, http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

type console struct{ api *httpapi.API }

// secure sets the headers every console answer carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin") // no-referrer would make the browser send Origin: null
		h.ServeHTTP(w, r)
	})
}

// localNext is where to go after signing in: a console path, never
// another site.
func localNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

func render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "the console's page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *console) signinPage(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, "signin.html", map[string]string{"Next": localNext(r.URL.Query().Get("next"))})
}

// signIn takes the sign-in form: a valid API key gets a session cookie
// (HttpOnly, SameSite=Strict, Secure over TLS) and goes on to next.
func (c *console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		render(w, http.StatusBadRequest, "signin.html", map[string]string{"Error": "The form could not be read.", "Next": "/ui/"})
		return
	}
	next := localNext(r.PostForm.Get("next"))
	if !httpapi.SameOrigin(r) {
		render(w, http.StatusForbidden, "signin.html", map[string]string{"Error": "Sign in from this server's own page.", "Next": next})
		return
	}
	value, s, ok := c.api.Keys().NewSession(strings.TrimSpace(r.PostForm.Get("api_key")), time.Now())
	if !ok {
		render(w, http.StatusUnauthorized, "signin.html", map[string]string{"Error": "That API key is not valid.", "Next": next})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: httpapi.SessionCookie, Value: value, Path: "/", Expires: s.Expires, MaxAge: int(httpapi.SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut clears the session cookie; it takes the session's CSRF token,
// so another site cannot sign a user out.
func (c *console) signOut(w http.ResponseWriter, r *http.Request) {
	s, ok := c.api.RequestSession(r)
	if ok && (r.Header.Get(httpapi.CSRFHeader) != s.CSRF || !httpapi.SameOrigin(r)) {
		http.Error(w, "signing out needs the session's CSRF token", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: httpapi.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// shell serves the page every console path loads, with the session's
// CSRF token for the script to send.
func (c *console) shell(w http.ResponseWriter, r *http.Request) {
	s, _ := c.api.RequestSession(r)
	render(w, http.StatusOK, "app.html", map[string]string{"CSRF": s.CSRF})
}

// Options is what the new-task form offers: for each kind, its options in
// the API's order, and the values of those that take a list.
type Options struct {
	Kinds     []string            `json:"kinds"`
	Options   map[string][]string `json:"options"` // by kind
	Formats   map[string][]string `json:"formats"` // by kind
	Codecs    map[string][]string `json:"codecs"`  // by format
	Qualities []string            `json:"qualities"`
	Fits      []string            `json:"fits"`
	Positions []string            `json:"positions"`
}

func optionTables() Options {
	o := Options{Options: map[string][]string{}, Formats: map[string][]string{}, Codecs: map[string][]string{},
		Fits: encoders.Fits, Positions: encoders.Positions}
	for _, q := range encoders.Qualities {
		o.Qualities = append(o.Qualities, string(q))
	}
	for _, k := range encoders.Kinds {
		o.Kinds = append(o.Kinds, string(k))
		o.Options[string(k)] = encoders.OptionNames(k)
		o.Formats[string(k)] = encoders.Formats(k)
		for _, f := range encoders.Formats(k) {
			if cs := encoders.CodecsFor(f); len(cs) > 0 {
				o.Codecs[f] = cs
			}
		}
	}
	return o
}

func (c *console) options(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(optionTables())
}
