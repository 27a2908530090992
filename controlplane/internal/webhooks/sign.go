package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint secret: "whsec_" and the base64 of
// its key bytes, as the specification shows them.
const SecretPrefix = "whsec_"

// secretBytes is the size of the keys NewSecret makes (the specification
// allows 24 to 64).
const secretBytes = 32

// Headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// NewSecret makes a secret of 32 random bytes from r (crypto/rand when
// nil), in its whsec_ form.
func NewSecret(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("make a webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret returns the key bytes of a secret in its whsec_ form.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("a webhook secret starts with %s", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("a webhook secret is %s and base64: %v", SecretPrefix, err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("a webhook secret holds 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign returns the v1 signature of a message: "v1," and the base64
// HMAC-SHA256, keyed by key, of id, the timestamp in seconds and the body,
// joined by dots. The body must be the exact bytes sent.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Header returns the headers of one attempt at delivering body as message
// id at time at, signed with every key given (during a rotation, the new
// secret and the old: a receiver that knows either verifies).
func Header(keys [][]byte, id string, at time.Time, body []byte) http.Header {
	ts := at.Unix()
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	h.Set("Content-Type", "application/json")
	return h
}

// Tolerance is how far a message's timestamp may be from the receiver's
// clock: the reference libraries' five minutes.
const Tolerance = 5 * time.Minute

// Verification errors.
var (
	ErrNoSignature = errors.New("no matching signature")
	ErrTimestamp   = errors.New("timestamp outside the tolerance")
)

// Verify checks a delivery as a receiver does: its timestamp within
// Tolerance of now, and one of its v1 signatures made with key over these
// exact bytes.
func Verify(key []byte, h http.Header, body []byte, now time.Time) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("%w: missing %s or %s", ErrNoSignature, HeaderID, HeaderTimestamp)
	}
	if math.Abs(now.Sub(time.Unix(ts, 0)).Seconds()) > Tolerance.Seconds() {
		return ErrTimestamp
	}
	want := Sign(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		if strings.HasPrefix(s, "v1,") && subtle.ConstantTimeCompare([]byte(s), []byte(want)) == 1 {
			return nil
		}
	}
	return ErrNoSignature
}
