package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/ittybit-oss/ittybit"
)

// Keys holds the accepted credentials as SHA-256 hashes: API keys for the
// task API, node tokens for agents and servers. Neither kind opens the
// other's routes.
type Keys struct {
	apiKeys    [][32]byte
	nodeTokens [][32]byte
}

// HashKey returns the hex SHA-256 of a key, the form kept in config files.
func HashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// AddAPIKey accepts a plaintext API key.
func (k *Keys) AddAPIKey(key string) { k.apiKeys = append(k.apiKeys, sha256.Sum256([]byte(key))) }

// AddNodeToken accepts a plaintext node token.
func (k *Keys) AddNodeToken(token string) {
	k.nodeTokens = append(k.nodeTokens, sha256.Sum256([]byte(token)))
}

// AddAPIKeyHash accepts an API key by its hex SHA-256.
func (k *Keys) AddAPIKeyHash(hexHash string) error {
	h, err := parseHash(hexHash)
	if err == nil {
		k.apiKeys = append(k.apiKeys, h)
	}
	return err
}

// AddNodeTokenHash accepts a node token by its hex SHA-256.
func (k *Keys) AddNodeTokenHash(hexHash string) error {
	h, err := parseHash(hexHash)
	if err == nil {
		k.nodeTokens = append(k.nodeTokens, h)
	}
	return err
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(s, "sha256:"))
	if err != nil || len(b) != 32 {
		return h, fmt.Errorf("key hash %q is not a hex SHA-256 (64 hex digits)", s)
	}
	copy(h[:], b)
	return h, nil
}

// match compares a presented key with each hash in constant time, and
// returns a short id of the key that matched (for scoping and logs).
func match(hashes [][32]byte, presented string) (string, bool) {
	h := sha256.Sum256([]byte(presented))
	found := 0
	id := ""
	for _, k := range hashes {
		if subtle.ConstantTimeCompare(h[:], k[:]) == 1 {
			found = 1
			id = hex.EncodeToString(k[:6])
		}
	}
	return id, found == 1
}

type ctxKey int

const keyIDKey ctxKey = 1

// keyID returns the id of the API key that authenticated the request.
func keyID(ctx context.Context) string {
	id, _ := ctx.Value(keyIDKey).(string)
	return id
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// apiKey admits requests with a valid API key, rate-limited per key.
func (a *API) apiKey(next http.Handler) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := a.apiKeyID(r)
		if err != nil {
			return err
		}
		if wait, ok := a.limits.allow(id); !ok {
			return retryAfter(w, wait, ittybit.Errorf(ittybit.ErrRateLimited, "too many requests for this API key; retry after %d s", wait))
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyIDKey, id)))
		return nil
	})
}

// apiKeyID returns the id of the API key r presents: in its Authorization
// header, or, without one, through a console session's cookie.
func (a *API) apiKeyID(r *http.Request) (string, error) {
	tok, present := bearer(r)
	if !present {
		return a.sessionAuth(r)
	}
	id, ok := match(a.cfg.Keys.apiKeys, tok)
	if !ok {
		if _, isNode := match(a.cfg.Keys.nodeTokens, tok); isNode {
			return "", ittybit.Errorf(ittybit.ErrTokenInvalid, "this is a node token; the task API takes an API key")
		}
		return "", ittybit.Errorf(ittybit.ErrTokenInvalid, "the API key is not valid")
	}
	return id, nil
}

// nodeToken admits requests with a valid node token.
func (a *API) nodeToken(next http.Handler) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		tok, present := bearer(r)
		if !present {
			return ittybit.Errorf(ittybit.ErrTokenMissing, "no Authorization header; send Authorization: Bearer <node token>")
		}
		if _, ok := match(a.cfg.Keys.nodeTokens, tok); !ok {
			if _, isKey := match(a.cfg.Keys.apiKeys, tok); isKey {
				return ittybit.Errorf(ittybit.ErrTokenInvalid, "this is an API key; this route takes a node token")
			}
			return ittybit.Errorf(ittybit.ErrTokenInvalid, "the node token is not valid")
		}
		next.ServeHTTP(w, r)
		return nil
	})
}
