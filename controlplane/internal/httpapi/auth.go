package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
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

const principalKey ctxKey = 1

// principal is who a request acts for: an operator's key (from the
// environment or the config file: every project, every scope) or a
// project's key (its project, its scopes).
type principal struct {
	// id names the key: the first 6 bytes of an operator key's hash in
	// hex, a project key's id ("key_…"). Request keys are scoped by it.
	id      string
	project string   // "" for an operator's key
	scopes  []string // a project key's
	rate    float64  // a project key's requests per second; 0: the server's
	// priority is a project key's default for its tasks ("": normal).
	priority string
}

// operator reports whether the principal is an operator's key.
func (p principal) operator() bool { return p.project == "" }

// has reports whether the principal holds scope.
func (p principal) has(scope string) bool { return p.operator() || slices.Contains(p.scopes, scope) }

// sees reports whether the principal may see an object of project.
func (p principal) sees(project string) bool { return p.operator() || p.project == project }

// who returns the principal of an authenticated request.
func who(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey).(principal)
	return p
}

// keyID returns the id of the API key that authenticated the request.
func keyID(ctx context.Context) string { return who(ctx).id }

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
		p, err := a.apiPrincipal(r)
		if err != nil {
			return err
		}
		if wait, ok := a.limits.allow(p.id, p.rate); !ok {
			return retryAfter(w, wait, ittybit.Errorf(ittybit.ErrRateLimited, "too many requests for this API key; retry after %d s", wait))
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
		return nil
	})
}

// apiPrincipal returns who r acts for, by the API key it presents: in its
// Authorization header, or, without one, through a console session's
// cookie (an operator's key).
func (a *API) apiPrincipal(r *http.Request) (principal, error) {
	tok, present := bearer(r)
	if !present {
		id, err := a.sessionAuth(r)
		return principal{id: id}, err
	}
	if id, ok := match(a.cfg.Keys.apiKeys, tok); ok {
		return principal{id: id}, nil
	}
	if k := a.projectKey(r.Context(), tok); k != nil {
		return principal{id: k.ID, project: k.Project, scopes: k.Scopes, rate: k.RateLimit, priority: k.Priority}, nil
	}
	if _, isNode := match(a.cfg.Keys.nodeTokens, tok); isNode {
		return principal{}, ittybit.Errorf(ittybit.ErrTokenInvalid, "this is a node token; the task API takes an API key")
	}
	return principal{}, ittybit.Errorf(ittybit.ErrTokenInvalid, "the API key is not valid")
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
