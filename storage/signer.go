package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// filesRoot is where signed paths start; the control plane routes it to
// FilesHandler.
const filesRoot = "/files/"

// Errors of Signer.Verify, each wrapped with the reason.
var (
	// ErrBadSignature means the path is not one Path made with this
	// secret: malformed, tampered with, unclean, or for another prefix.
	ErrBadSignature = errors.New("invalid signed file path")
	// ErrExpired means the signature was good until its expiry, now past.
	ErrExpired = errors.New("signed file path expired")
)

// Signer makes and checks signed paths to managed files:
// "/files/<sig>/<expires-unix>/<key>". The signature is an HMAC-SHA256
// (base64url, unpadded) of the key's first two segments (the task prefix,
// "tasks/<task_id>/") and the expiry, not of the whole key: every file
// under the prefix is served under the same "/files/<sig>/<expires>/"
// path, so the relative references in an HLS master playlist
// ("720p/index.m3u8") resolve to paths that verify. Whoever holds one
// signed path can read everything under its task prefix until it expires.
type Signer struct {
	// Secret keys the HMAC; 32 random bytes. Without one nothing verifies.
	Secret []byte
}

// Path returns the signed path of key, valid until expires. Key segments
// are percent-escaped where needed; key must be a managed key of at least
// three segments (prefix and file), or Verify refuses the path.
func (s Signer) Path(key string, expires time.Time) string {
	exp := expires.Unix()
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return filesRoot + s.sign(taskPrefix(key), exp) + "/" + strconv.FormatInt(exp, 10) + "/" + strings.Join(segs, "/")
}

// Verify checks a signed path, as the request's decoded URL path
// (r.URL.Path), at time now and returns the key it grants. It refuses,
// with an error wrapping ErrBadSignature, paths that are not clean (".",
// "..", empty segments, a trailing slash), keys that are not managed keys
// or have fewer than three segments, and signatures that do not match
// the key's prefix and expiry; with ErrExpired, paths past their expiry.
func (s Signer) Verify(urlPath string, now time.Time) (key string, err error) {
	key, _, err = s.verify(urlPath, now)
	return key, err
}

func (s Signer) verify(urlPath string, now time.Time) (key string, expires time.Time, err error) {
	bad := func(why string) (string, time.Time, error) {
		return "", time.Time{}, fmt.Errorf("%w: %s", ErrBadSignature, why)
	}
	if len(s.Secret) == 0 {
		return bad("no signing secret is configured")
	}
	rest, ok := strings.CutPrefix(urlPath, filesRoot)
	if !ok {
		return bad("not a " + filesRoot + " path")
	}
	if path.Clean(urlPath) != urlPath {
		return bad("the path is not clean")
	}
	sig, rest, _ := strings.Cut(rest, "/")
	expStr, key, _ := strings.Cut(rest, "/")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || strconv.FormatInt(exp, 10) != expStr {
		return bad("the expiry is not a Unix time")
	}
	if err := checkKey(key); err != nil {
		return bad(err.Error())
	}
	if strings.Count(key, "/") < 2 {
		return bad("the key names no file under a task prefix")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(taskPrefix(key), exp)) {
		return bad("the signature does not match")
	}
	expires = time.Unix(exp, 0)
	if now.After(expires) {
		return "", time.Time{}, fmt.Errorf("%w at %s", ErrExpired, expires.UTC().Format(time.RFC3339))
	}
	return key, expires, nil
}

// taskPrefix returns key's first two segments with a trailing slash
// ("tasks/t1/"), or key itself when it has fewer.
func taskPrefix(key string) string {
	i := strings.IndexByte(key, '/')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '/')
	if j < 0 {
		return key
	}
	return key[:i+1+j+1]
}

func (s Signer) sign(prefix string, exp int64) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(prefix, exp))
}

// mac is the HMAC of a versioned, unambiguous message: the prefix cannot
// hold a NUL (checkKey refuses control characters).
func (s Signer) mac(prefix string, exp int64) []byte {
	m := hmac.New(sha256.New, s.Secret)
	fmt.Fprintf(m, "ittybit-files-v1\x00%s\x00%d", prefix, exp)
	return m.Sum(nil)
}
