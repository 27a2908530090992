package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit"
)

// TestSessions: a session cookie made with the API key holds nothing of
// it, is accepted by any API built with the same key and by none other,
// expires, and cannot be altered; through it the API answers reads, and
// writes only with its CSRF token and from its own origin.
func TestSessions(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	keys := &Keys{}
	keys.AddAPIKey(testKey)
	if _, _, ok := keys.NewSession("wrong", now); ok {
		t.Fatal("a session made with a wrong key")
	}
	value, s, ok := keys.NewSession(testKey, now)
	if !ok || strings.Contains(value, testKey) || s.CSRF == "" || s.CSRF == value {
		t.Fatalf("session %q %+v", value, s)
	}
	// Another server, configured with the key's hash, accepts it.
	other := &Keys{}
	if err := other.AddAPIKeyHash(HashKey(testKey)); err != nil {
		t.Fatal(err)
	}
	if got, ok := other.Session(value, now.Add(time.Hour)); !ok || got.CSRF != s.CSRF || got.KeyID != s.KeyID {
		t.Errorf("another server reads %+v %v, want %+v", got, ok, s)
	}
	stranger := &Keys{}
	stranger.AddAPIKey("another key")
	if _, ok := stranger.Session(value, now); ok {
		t.Error("a server with another key accepts the session")
	}
	if _, ok := keys.Session(value, now.Add(SessionTTL)); ok {
		t.Error("an expired session is accepted")
	}
	for _, bad := range []string{"", "v1.", value[:len(value)-2] + "AA", "v2" + value[2:], strings.Replace(value, ".", "", 1)} {
		if _, ok := keys.Session(bad, now); ok {
			t.Errorf("a session %q is accepted", bad)
		}
	}
	a := mustAPI(t, func(c *Config) { c.Now = func() time.Time { return now } })
	cookie := SessionCookie + "=" + value
	if w := serve(a, "GET", "/tasks", "", "", "Cookie", cookie); w.Code != 200 {
		t.Errorf("a read with the session: %d %s", w.Code, w.Body)
	}
	body := `{"kind":"image","input":"https://example.com/a.jpg"}`
	wantError(t, serve(a, "POST", "/tasks", body, "", "Cookie", cookie), 403, ittybit.ErrCSRFFailed)
	wantError(t, serve(a, "POST", "/tasks", body, "", "Cookie", cookie, CSRFHeader, "forged"), 403, ittybit.ErrCSRFFailed)
	wantError(t, serve(a, "POST", "/tasks", body, "", "Cookie", cookie, CSRFHeader, s.CSRF, "Origin", "https://evil.example"), 403, ittybit.ErrCSRFFailed)
	if w := serve(a, "POST", "/tasks", body, "", "Cookie", cookie, CSRFHeader, s.CSRF, "Origin", "http://example.com"); w.Code != 201 {
		t.Errorf("a write with the token from this origin: %d %s", w.Code, w.Body)
	}
	wantError(t, serve(a, "GET", "/tasks", "", "", "Cookie", SessionCookie+"=v1.nothing.here"), 401, ittybit.ErrTokenMissing)
}
