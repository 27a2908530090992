package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// Console sessions. The console's sign-in exchanges an API key for a
// session cookie, so that the key is never kept by the browser: the cookie
// holds an expiry and a random nonce, signed with a key derived from the
// API key's hash (which every server holds), so any server of the cluster
// accepts it and none has to remember it; nothing in it reveals the key.
// A request that a session authenticates and that changes anything must
// also carry the session's CSRF token (X-CSRF-Token), which the console's
// pages hold and another site cannot read.

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "ittybit_session"

// CSRFHeader carries a session's CSRF token on requests that change state.
const CSRFHeader = "X-CSRF-Token"

// SessionTTL is how long a console session lasts.
const SessionTTL = 12 * time.Hour

// sessionMAC is the key that signs sessions of the API key whose hash is
// h: domain-separated from anything else derived from it.
func sessionMAC(h [32]byte) []byte {
	m := hmac.New(sha256.New, h[:])
	m.Write([]byte("ittybit console session v1"))
	return m.Sum(nil)
}

func sign(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Session is a console session, as its cookie says.
type Session struct {
	KeyID   string // the id of the API key it was made with
	CSRF    string // its CSRF token
	Expires time.Time
}

// NewSession makes a session for API key key (which must be valid), valid
// until now+SessionTTL, and returns its cookie's value.
func (k *Keys) NewSession(key string, now time.Time) (string, Session, bool) {
	id, ok := match(k.apiKeys, key)
	if !ok {
		return "", Session{}, false
	}
	h := sha256.Sum256([]byte(key))
	payload := make([]byte, 8+16)
	binary.BigEndian.PutUint64(payload, uint64(now.Add(SessionTTL).Unix()))
	if _, err := rand.Read(payload[8:]); err != nil {
		return "", Session{}, false
	}
	mac := sessionMAC(h)
	value := "v1." + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sign(mac, payload))
	return value, Session{KeyID: id, CSRF: csrfToken(mac, payload), Expires: now.Add(SessionTTL)}, true
}

func csrfToken(mac, payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(sign(mac, []byte("csrf."), payload))
}

// Session reads a session cookie's value: the session, if an API key that
// is still accepted signed it and it has not expired.
func (k *Keys) Session(value string, now time.Time) (Session, bool) {
	rest, ok := strings.CutPrefix(value, "v1.")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return Session{}, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil || len(payload) != 24 {
		return Session{}, false
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0)
	if !now.Before(expires) {
		return Session{}, false
	}
	for _, h := range k.apiKeys {
		mac := sessionMAC(h)
		if hmac.Equal(sig, sign(mac, payload)) {
			return Session{KeyID: hex.EncodeToString(h[:6]), CSRF: csrfToken(mac, payload), Expires: expires}, true
		}
	}
	return Session{}, false
}

// RequestSession returns the session of r's cookie, if it has a valid one.
func (a *API) RequestSession(r *http.Request) (Session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Session{}, false
	}
	return a.cfg.Keys.Session(c.Value, a.cfg.Now())
}

// sessionAuth admits a request by its session cookie: reads as they are;
// anything else only with the session's CSRF token and, when the browser
// says where the request comes from, from this origin.
func (a *API) sessionAuth(r *http.Request) (string, error) {
	s, ok := a.RequestSession(r)
	if !ok {
		return "", ittybit.Errorf(ittybit.ErrTokenMissing, "no Authorization header; send Authorization: Bearer <API key> (or sign in to the console again: its session is missing or expired)")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return s.KeyID, nil
	}
	if !SameOrigin(r) {
		return "", ittybit.Errorf(ittybit.ErrCSRFFailed, "a console session's request from another site is refused")
	}
	if tok := r.Header.Get(CSRFHeader); tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
		return "", ittybit.Errorf(ittybit.ErrCSRFFailed, "a console session's request that changes anything needs the session's %s header", CSRFHeader)
	}
	return s.KeyID, nil
}

// SameOrigin says whether r came from a page of this server: its Origin
// (or, without one, its Referer) names the host r was sent to. A request
// that names neither passes (browsers send Origin on every cross-site
// POST).
func SameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return false
	}
	host := r.Host
	if fwd := r.Header.Get("X-Forwarded-Host"); fwd != "" && r.Header.Get(headerForwardedBy) != "" {
		host = fwd // forwarded by a server of the cluster: the host the browser used
	}
	return strings.EqualFold(u.Host, host)
}

// Keys returns the credentials the API accepts.
func (a *API) Keys() *Keys { return a.cfg.Keys }

// session admits requests with a valid console session; any other goes to
// the sign-in page, to come back here after it.
func (a *API) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.RequestSession(r); !ok {
			http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}
