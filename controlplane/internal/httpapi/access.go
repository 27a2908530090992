package httpapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
)

// Projects and their keys: the routes, who may call them, and how a
// project key is admitted.

// keyPrefix starts every project key's secret, so that a leaked one is
// recognised (secret scanners, logs) and told from an operator's key.
const keyPrefix = "ik_"

// Limits of the fields of projects and keys.
const (
	maxNameLen   = 100
	maxRateLimit = 100_000
	maxWeight    = 100
	// maxConcurrent bounds a project's cap of running tasks.
	maxConcurrent = 1_000_000
)

// scopeOperator is what a route of the whole cluster needs: only an
// operator's key holds it.
const scopeOperator = "operator"

// need admits a request only when its key holds scope.
func (a *API) need(scope string, h http.Handler) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		p := who(r.Context())
		switch {
		case scope == scopeOperator && !p.operator():
			return ittybit.Errorf(ittybit.ErrForbidden, "%s %s spans every project: only an operator's key (the server's --api-key) may call it; this key belongs to project %s", r.Method, r.URL.Path, p.project)
		case !p.has(scope):
			return ittybit.Errorf(ittybit.ErrForbidden, "this key's scopes (%s) do not include %s, which %s %s needs", strings.Join(p.scopes, ", "), scope, r.Method, r.URL.Path)
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

// projectKey returns the project key whose secret is tok, or nil. A
// follower that does not know it catches up with the leader first: a key
// made a moment ago through another server works here too.
func (a *API) projectKey(ctx context.Context, tok string) *state.Key {
	if !strings.HasPrefix(tok, keyPrefix) {
		return nil
	}
	hash := HashKey(tok)
	if k := a.cfg.Store.State().KeyByHash(hash); k != nil || a.cfg.Store.IsLeader() {
		return k
	}
	if a.catchUp(ctx) != nil {
		return nil
	}
	return a.cfg.Store.State().KeyByHash(hash)
}

// catchUp waits, for at most a second, until this server's state shows
// every entry the leader's showed when asked (a read index, as Raft's
// followers serve linearizable reads).
func (a *API) catchUp(ctx context.Context) error {
	_, addr, ok := a.cfg.Store.Leader()
	if !ok || addr == "" {
		return errors.New("no leader known")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := a.proxy.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Index uint64 `json:"state_index"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return err
	}
	for a.cfg.Store.StateIndex() < h.Index {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// newKeySecret returns a new project key's secret: keyPrefix and 32
// random bytes in base 32 (lower case, no padding).
func newKeySecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return keyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

func projectView(p *state.Project) api.Project {
	return api.Project{ID: p.ID, Object: "project", Name: p.Name, Weight: max(1, p.Weight), MaxConcurrentTasks: p.MaxConcurrentTasks, CreatedAt: p.CreatedAt}
}

func keyView(k *state.Key) api.Key {
	return api.Key{ID: k.ID, Object: "key", Name: k.Name, Project: k.Project, Scopes: slices.Clone(k.Scopes),
		RateLimit: k.RateLimit, Priority: cmp.Or(k.Priority, api.PriorityNormal), Prefix: k.Prefix, CreatedAt: k.CreatedAt}
}

// accessOp writes one op and returns its result.
func (a *API) accessOp(r *http.Request, op state.AccessOp) (state.AccessResult, error) {
	res, err := a.cfg.Store.AccessOps(r.Context(), []state.AccessOp{op})
	if errors.Is(err, store.ErrUpgrading) {
		return state.AccessResult{}, ittybit.Errorf(ittybit.ErrUnavailable, "not every server of the cluster runs a release that keeps projects and keys yet (log entry type %d); upgrade them all, then retry", store.LogVersion)
	}
	if err != nil {
		return state.AccessResult{}, elsewhere(err)
	}
	return res[0], nil
}

// checkName checks a name field: required, at most maxNameLen
// characters, printable.
func checkName(field string, name *string) error {
	switch {
	case name == nil || strings.TrimSpace(*name) == "":
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, field, "%s is required; accepted: 1 to %d characters", field, maxNameLen)
	case utf8.RuneCountInString(*name) > maxNameLen:
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, field, "%s is %d characters; accepted: at most %d", field, utf8.RuneCountInString(*name), maxNameLen)
	case strings.IndexFunc(*name, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0:
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, field, "%s holds a control character; accepted: printable text", field)
	}
	return nil
}

// decodeStrict reads a JSON body into v, refusing unknown fields, with
// what is accepted named in the error.
func decodeStrict(r *http.Request, v any, what, accepted string) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, "the body is not %s: %v; accepted: %s", what, err, accepted)
	}
	return nil
}

func (a *API) createProject(w http.ResponseWriter, r *http.Request) error {
	var req api.ProjectRequest
	if err := decodeStrict(r, &req, "a project", `{"name", "weight", "max_concurrent_tasks"}`); err != nil {
		return err
	}
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	if req.Weight != nil && (*req.Weight < 1 || *req.Weight > maxWeight) {
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, "weight", "weight %d is out of range; accepted: 1 to %d (the project's share of the fleet against the others at the same priority; default 1)", *req.Weight, maxWeight)
	}
	if req.MaxConcurrentTasks != nil && (*req.MaxConcurrentTasks < 0 || *req.MaxConcurrentTasks > maxConcurrent) {
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, "max_concurrent_tasks", "max_concurrent_tasks %d is out of range; accepted: 0 (no cap) to %d", *req.MaxConcurrentTasks, maxConcurrent)
	}
	now := a.cfg.Now()
	p := &state.Project{ID: newID("proj_", now), Name: strings.TrimSpace(*req.Name), CreatedAt: now.UnixMilli()}
	if req.MaxConcurrentTasks != nil {
		p.MaxConcurrentTasks = *req.MaxConcurrentTasks
	}
	if req.Weight != nil && *req.Weight > 1 {
		p.Weight = *req.Weight
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.ProjectCreate, Now: now.UnixMilli(), Project: p})
	if err != nil {
		return err
	}
	if res.Err != "" {
		return fmt.Errorf("create project %s: %s", p.ID, res.Err) // a fresh id: never
	}
	w.Header().Set("Location", "/projects/"+p.ID)
	writeJSON(w, http.StatusCreated, projectView(res.Project))
	return nil
}

func (a *API) listProjects(w http.ResponseWriter, r *http.Request) error {
	p := who(r.Context())
	out := api.List[api.Project]{Object: "list", Data: []api.Project{}}
	for _, pr := range a.cfg.Store.State().Projects() {
		if p.sees(pr.ID) {
			out.Data = append(out.Data, projectView(pr))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getProject(w http.ResponseWriter, r *http.Request) error {
	pr, err := a.cfg.Store.State().Project(r.PathValue("id"))
	if err != nil || !who(r.Context()).sees(pr.ID) {
		return ittybit.Errorf(ittybit.ErrNotFound, "no project %q", r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, projectView(pr))
	return nil
}

// checkKey checks a key request of principal p, and returns its project.
func (a *API) checkKey(p principal, req api.KeyRequest) (string, error) {
	var problems []error
	if err := checkName("name", req.Name); err != nil {
		problems = append(problems, err)
	}
	project, err := a.requestProject(p, req.Project, "keys")
	if ittybit.KindOf(err) == ittybit.ErrForbidden {
		return "", err
	} else if err != nil {
		problems = append(problems, err)
	}
	if req.Scopes != nil && len(req.Scopes) == 0 {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidScope, "scopes", "scopes is empty; accepted: one or more of %s (default: %s)", strings.Join(api.Scopes(), ", "), strings.Join(api.DefaultScopes(), ", ")))
	}
	for _, s := range req.Scopes {
		if !slices.Contains(api.Scopes(), s) {
			problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidScope, "scopes", "scope %q is unknown; accepted: %s", s, strings.Join(api.Scopes(), ", ")))
		}
	}
	if req.Priority != nil && !slices.Contains(api.Priorities(), *req.Priority) {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "priority", "priority %q is unknown; accepted: %s (default normal)", *req.Priority, strings.Join(api.Priorities(), ", ")))
	}
	if req.RateLimit != nil && (math.IsNaN(*req.RateLimit) || *req.RateLimit < 0 || *req.RateLimit > maxRateLimit) {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, "rate_limit", "rate_limit %v is out of range; accepted: requests per second from 0 (the server's --rate-limit) to %d", *req.RateLimit, maxRateLimit))
	}
	return project, errors.Join(problems...)
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	var req api.KeyRequest
	if err := decodeStrict(r, &req, "a key", `{"name", "project", "scopes", "rate_limit", "priority"}`); err != nil {
		return err
	}
	p := who(r.Context())
	project, err := a.checkKey(p, req)
	if err != nil {
		return err
	}
	scopes := api.DefaultScopes()
	if req.Scopes != nil {
		scopes = nil
		for _, s := range api.Scopes() { // in the contract's order, once each
			if slices.Contains(req.Scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	secret, err := newKeySecret()
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	k := &state.Key{ID: newID("key_", now), Name: strings.TrimSpace(*req.Name), Project: project, Scopes: scopes,
		Prefix: secret[:len(keyPrefix)+8], Hash: HashKey(secret), CreatedAt: now.UnixMilli()}
	if req.RateLimit != nil {
		k.RateLimit = *req.RateLimit
	}
	if req.Priority != nil && *req.Priority != api.PriorityNormal {
		k.Priority = *req.Priority
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.KeyCreate, Now: now.UnixMilli(), Key: k})
	if err != nil {
		return err
	}
	switch res.Err {
	case "":
	case state.AccessUnknownProject:
		return unknownProject(project)
	default:
		return fmt.Errorf("create key %s: %s", k.ID, res.Err) // a fresh id and secret: never
	}
	out := keyView(res.Key)
	out.Secret = secret
	w.Header().Set("Location", "/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	project, err := projectQuery(r)
	if err != nil {
		return err
	}
	out := api.List[api.Key]{Object: "list", Data: []api.Key{}}
	for _, k := range a.cfg.Store.State().Keys(project) {
		out.Data = append(out.Data, keyView(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// key returns the key the path names, when the principal sees it.
func (a *API) key(r *http.Request) (*state.Key, error) {
	k, err := a.cfg.Store.State().Key(r.PathValue("id"))
	if err != nil || !who(r.Context()).sees(k.Project) {
		return nil, ittybit.Errorf(ittybit.ErrNotFound, "no key %q", r.PathValue("id"))
	}
	return k, nil
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) error {
	k, err := a.key(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keyView(k))
	return nil
}

// revokeKey removes a key: every server refuses it once it applies the
// revocation (the leader before it answers).
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	k, err := a.key(r)
	if err != nil {
		return err
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.KeyRevoke, Now: a.cfg.Now().UnixMilli(), ID: k.ID})
	if err != nil {
		return err
	}
	if res.Err != "" {
		return ittybit.Errorf(ittybit.ErrNotFound, "no key %q", k.ID) // revoked meanwhile
	}
	writeJSON(w, http.StatusOK, keyView(res.Key))
	return nil
}

// requestProject returns the project a request to make a key or a
// connection names (what: "keys", "connections"), or its key's own when it
// names none, with why it cannot be used: a project's key naming another
// project (forbidden), none named by an operator's key, or one that does
// not exist.
func (a *API) requestProject(p principal, named *string, what string) (string, error) {
	project := p.project
	switch {
	case named != nil && !p.operator() && *named != p.project:
		return "", ittybit.FieldErrorf(ittybit.ErrForbidden, "project", "this key manages only the %s of its own project, %s", what, p.project)
	case named != nil:
		project = *named
	}
	if project == "" {
		return "", ittybit.FieldErrorf(ittybit.ErrInvalidOption, "project", "project is required; accepted: the id of a project (GET /projects)")
	}
	if _, err := a.cfg.Store.State().Project(project); err != nil {
		return project, unknownProject(project)
	}
	return project, nil
}

func unknownProject(project string) error {
	return ittybit.FieldErrorf(ittybit.ErrUnknownProject, "project", "project %q does not exist; accepted: the id of a project (GET /projects)", project)
}

// projectQuery reads a listing's query: the key's own project, or, for
// an operator's key, the one ?project= names ("": every project's).
func projectQuery(r *http.Request) (string, error) {
	p := who(r.Context())
	project := p.project
	for name, v := range r.URL.Query() {
		if name != "project" {
			return "", ittybit.Errorf(ittybit.ErrInvalidOption, "unknown query parameter %q; accepted: project", name)
		}
		if !p.sees(v[0]) {
			return "", ittybit.Errorf(ittybit.ErrNotFound, "no project %q", v[0])
		}
		project = v[0]
	}
	return project, nil
}
