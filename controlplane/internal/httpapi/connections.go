package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/storage"
)

// S3 connections: a project's credentials for one bucket, sealed before
// they are written to the log (Config.Sealer), opened only by the leader
// to put them in the assignment of a step that reads or writes that
// bucket.

// Sealer seals secrets before they enter the replicated state and opens
// them again (package seal). ad binds a sealed value to its connection.
type Sealer interface {
	Seal(plain, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Limits of a connection's fields.
const (
	maxAccessKeyID     = 128
	maxSecretAccessKey = 256
	maxRegion          = 64
	maxEndpoint        = 2048
)

// bucketName is an S3 bucket name: 3 to 63 lower-case letters, digits,
// dots and hyphens, starting and ending with a letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// checkS3 proves that credentials may write to a bucket: a tiny object
// put and deleted. It returns the S3 error code with the error.
func checkS3(ctx context.Context, cfg storage.S3Config, bucket string) (string, error) {
	s, err := storage.NewS3(ctx, cfg)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.CheckWrite(ctx, bucket)
}

func connectionView(c *state.Connection) api.Connection {
	return api.Connection{ID: c.ID, Object: "connection", Name: c.Name, Project: c.Project, Kind: c.Kind, Bucket: c.Bucket,
		Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle, AccessKeyID: c.AccessKeyID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// connection returns the connection the path names, when the principal
// sees it.
func (a *API) connection(r *http.Request) (*state.Connection, error) {
	c, err := a.cfg.Store.State().Connection(r.PathValue("id"))
	if err != nil || !who(r.Context()).sees(c.Project) {
		return nil, ittybit.Errorf(ittybit.ErrNotFound, "no connection %q", r.PathValue("id"))
	}
	return c, nil
}

// checkConnection checks the fields of a create (all of them) or a
// change (those given), and returns the project of a create.
func (a *API) checkConnection(r *http.Request, req api.ConnectionRequest, create bool) (string, error) {
	var problems []error
	bad := func(field, format string, args ...any) {
		problems = append(problems, ittybit.FieldErrorf(ittybit.ErrInvalidOption, field, format, args...))
	}
	p := who(r.Context())
	project := p.project
	if create {
		if err := checkName("name", req.Name); err != nil {
			problems = append(problems, err)
		}
		var err error
		if project, err = a.requestProject(p, req.Project, "connections"); ittybit.KindOf(err) == ittybit.ErrForbidden {
			return "", err
		} else if err != nil {
			problems = append(problems, err)
		}
		for field, v := range map[string]*string{"kind": req.Kind, "bucket": req.Bucket, "access_key_id": req.AccessKeyID, "secret_access_key": req.SecretAccessKey} {
			if v == nil || *v == "" {
				bad(field, "%s is required", field)
			}
		}
	} else {
		if req.Name != nil {
			if err := checkName("name", req.Name); err != nil {
				problems = append(problems, err)
			}
		}
		for field, v := range map[string]*string{"project": req.Project, "kind": req.Kind, "bucket": req.Bucket} {
			if v != nil {
				bad(field, "%s cannot change; accepted in a change: name, endpoint, region, path_style, access_key_id, secret_access_key (make another connection for another bucket)", field)
			}
		}
	}
	if req.Kind != nil && *req.Kind != "" && *req.Kind != "s3" {
		bad("kind", "kind %q is unknown; accepted: s3", *req.Kind)
	}
	if req.Bucket != nil && *req.Bucket != "" && !bucketName.MatchString(*req.Bucket) {
		bad("bucket", "bucket %q is not an S3 bucket name; accepted: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit", *req.Bucket)
	}
	if req.Endpoint != nil && *req.Endpoint != "" {
		switch {
		case len(*req.Endpoint) > maxEndpoint:
			bad("endpoint", "endpoint is %d bytes; accepted: at most %d", len(*req.Endpoint), maxEndpoint)
		default:
			if err := a.sender.CheckURL(r.Context(), *req.Endpoint); err != nil {
				bad("endpoint", "endpoint: %v", err)
			}
		}
	}
	if req.Region != nil && len(*req.Region) > maxRegion {
		bad("region", "region is %d bytes; accepted: at most %d", len(*req.Region), maxRegion)
	}
	if req.AccessKeyID != nil && (len(*req.AccessKeyID) > maxAccessKeyID || (!create && *req.AccessKeyID == "")) {
		bad("access_key_id", "access_key_id is %d bytes; accepted: 1 to %d", len(*req.AccessKeyID), maxAccessKeyID)
	}
	if req.SecretAccessKey != nil && (len(*req.SecretAccessKey) > maxSecretAccessKey || (!create && *req.SecretAccessKey == "")) {
		// Never echo the secret: only its length.
		bad("secret_access_key", "secret_access_key is %d bytes; accepted: 1 to %d", len(*req.SecretAccessKey), maxSecretAccessKey)
	}
	return project, errors.Join(problems...)
}

// verify tries the connection's credentials (secret in clear) with a
// tiny write, and turns a refusal into connection_failed with the S3
// error code.
func (a *API) verify(ctx context.Context, c *state.Connection, secret string) error {
	check := a.cfg.CheckS3
	if check == nil {
		check = checkS3
	}
	code, err := check(ctx, storage.S3Config{Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle, AccessKeyID: c.AccessKeyID, SecretAccessKey: secret}, c.Bucket)
	if err == nil {
		return nil
	}
	if code == "" {
		code = "none"
	}
	// The SDK's messages name the operation, the status and the code;
	// never the credentials.
	return ittybit.Errorf(ittybit.ErrConnectionFailed, "bucket %s refused a test write (a small object put, then deleted) with these credentials: S3 error code %s: %v", c.Bucket, code, err)
}

// sealer returns the servers' sealer, or why connections cannot be kept.
func (a *API) sealer() (Sealer, error) {
	if a.cfg.Sealer == nil {
		return nil, ittybit.Errorf(ittybit.ErrUnavailable, "this server has no seal key to keep a connection's secret with: start every server with $ITTYBIT_SEAL_KEY or --seal-key-file")
	}
	return a.cfg.Sealer, nil
}

func (a *API) createConnection(w http.ResponseWriter, r *http.Request) error {
	var req api.ConnectionRequest
	if err := decodeStrict(r, &req, "a connection", `{"name", "project", "kind", "bucket", "endpoint", "region", "path_style", "access_key_id", "secret_access_key"}`); err != nil {
		return err
	}
	project, err := a.checkConnection(r, req, true)
	if err != nil {
		return err
	}
	sl, err := a.sealer()
	if err != nil {
		return err
	}
	if cur := a.cfg.Store.State().BucketConnection(project, *req.Bucket); cur != nil {
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, "bucket", "project %s already has connection %s for bucket %s; accepted: change it with PATCH /connections/%s, or a bucket it has none for", project, cur.ID, cur.Bucket, cur.ID)
	}
	now := a.cfg.Now()
	c := &state.Connection{ID: newID("conn_", now), Name: strings.TrimSpace(*req.Name), Project: project, Kind: *req.Kind, Bucket: *req.Bucket,
		AccessKeyID: *req.AccessKeyID, CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}
	if req.Endpoint != nil {
		c.Endpoint = *req.Endpoint
	}
	if req.Region != nil {
		c.Region = *req.Region
	}
	if req.PathStyle != nil {
		c.PathStyle = *req.PathStyle
	}
	if err := a.verify(r.Context(), c, *req.SecretAccessKey); err != nil {
		return err
	}
	if c.Sealed, err = sl.Seal([]byte(*req.SecretAccessKey), []byte(c.ID)); err != nil {
		return fmt.Errorf("seal the secret: %w", err)
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.ConnectionCreate, Now: now.UnixMilli(), Connection: c})
	if err != nil {
		return err
	}
	switch res.Err {
	case "":
	case state.AccessExists:
		return ittybit.FieldErrorf(ittybit.ErrInvalidOption, "bucket", "project %s already has a connection for bucket %s; accepted: change it with PATCH", project, c.Bucket)
	case state.AccessUnknownProject:
		return unknownProject(project)
	default:
		return fmt.Errorf("create connection %s: %s", c.ID, res.Err)
	}
	w.Header().Set("Location", "/connections/"+c.ID)
	writeJSON(w, http.StatusCreated, connectionView(res.Connection))
	return nil
}

func (a *API) listConnections(w http.ResponseWriter, r *http.Request) error {
	project, err := projectQuery(r)
	if err != nil {
		return err
	}
	out := api.List[api.Connection]{Object: "list", Data: []api.Connection{}}
	for _, c := range a.cfg.Store.State().Connections(project) {
		out.Data = append(out.Data, connectionView(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, connectionView(c))
	return nil
}

// updateConnection changes a connection's name, where it reaches its
// bucket, or its credentials (a rotation), once the result passes the
// same test write as a new one.
func (a *API) updateConnection(w http.ResponseWriter, r *http.Request) error {
	cur, err := a.connection(r)
	if err != nil {
		return err
	}
	var req api.ConnectionRequest
	if err := decodeStrict(r, &req, "a change of a connection", `{"name", "endpoint", "region", "path_style", "access_key_id", "secret_access_key"}`); err != nil {
		return err
	}
	if _, err := a.checkConnection(r, req, false); err != nil {
		return err
	}
	sl, err := a.sealer()
	if err != nil {
		return err
	}
	next := *cur
	next.UpdatedAt = a.cfg.Now().UnixMilli()
	if req.Name != nil {
		next.Name = strings.TrimSpace(*req.Name)
	}
	if req.Endpoint != nil {
		next.Endpoint = *req.Endpoint
	}
	if req.Region != nil {
		next.Region = *req.Region
	}
	if req.PathStyle != nil {
		next.PathStyle = *req.PathStyle
	}
	if req.AccessKeyID != nil {
		next.AccessKeyID = *req.AccessKeyID
	}
	var secret []byte
	if req.SecretAccessKey != nil {
		secret = []byte(*req.SecretAccessKey)
	} else if secret, err = sl.Open(cur.Sealed, []byte(cur.ID)); err != nil {
		return ittybit.Errorf(ittybit.ErrUnavailable, "connection %s's secret cannot be opened with this server's seal keys (%v): give secret_access_key again", cur.ID, err)
	}
	if err := a.verify(r.Context(), &next, string(secret)); err != nil {
		return err
	}
	// Sealed again in any case: after a rotation of the seal key, a
	// change moves the secret to the current one.
	if next.Sealed, err = sl.Seal(secret, []byte(next.ID)); err != nil {
		return fmt.Errorf("seal the secret: %w", err)
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.ConnectionUpdate, Now: next.UpdatedAt, ID: cur.ID, Connection: &next})
	if err != nil {
		return err
	}
	if res.Err != "" {
		return ittybit.Errorf(ittybit.ErrNotFound, "no connection %q", cur.ID) // deleted meanwhile
	}
	writeJSON(w, http.StatusOK, connectionView(res.Connection))
	return nil
}

func (a *API) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	cur, err := a.connection(r)
	if err != nil {
		return err
	}
	res, err := a.accessOp(r, state.AccessOp{Op: state.ConnectionDelete, Now: a.cfg.Now().UnixMilli(), ID: cur.ID})
	if err != nil {
		return err
	}
	if res.Err != "" {
		return ittybit.Errorf(ittybit.ErrNotFound, "no connection %q", cur.ID)
	}
	writeJSON(w, http.StatusOK, connectionView(res.Connection))
	return nil
}

// needConnections refuses a project's task whose input or output is in a
// bucket the project has no connection for, and the fleet's own S3
// identity does not serve to projects (Config.FleetBuckets). An
// operator's task uses the fleet's identity, as before.
func (a *API) needConnections(r *http.Request, input, output string) error {
	p := who(r.Context())
	if p.operator() {
		return nil
	}
	for _, u := range []struct{ field, url string }{{"input", input}, {"output", output}} {
		if !strings.HasPrefix(u.url, "s3://") {
			continue
		}
		bucket, _, err := storage.ParseS3URL(u.url)
		if err != nil || slices.Contains(a.cfg.FleetBuckets, bucket) {
			continue // validation names a bad URL
		}
		if a.cfg.Store.State().BucketConnection(p.project, bucket) != nil {
			continue
		}
		if !a.cfg.Store.IsLeader() && a.catchUp(r.Context()) == nil && a.cfg.Store.State().BucketConnection(p.project, bucket) != nil {
			continue // made a moment ago through another server
		}
		return ittybit.FieldErrorf(ittybit.ErrConnectionRequired, u.field, "%s is in bucket %s, which project %s has no connection for; accepted: a bucket of one of its connections (POST /connections to add one), or no %s", u.field, bucket, p.project, u.field)
	}
	return nil
}

// S3Access returns the credentials a step of kind step of task t needs:
// its project's connections for the bucket of its input (probe, ingest)
// or output (upload). It is the scheduler's Access, run on the leader.
func S3Access(st *state.Store, sl Sealer, t *api.Task, step string, log func(msg string, args ...any)) []api.S3Access {
	if t.Project == "" || sl == nil {
		return nil
	}
	var url string
	switch step {
	case api.StepProbe, api.StepIngest:
		url = t.Input
	case api.StepUpload:
		if t.Output != nil {
			url = *t.Output
		}
	}
	if !strings.HasPrefix(url, "s3://") {
		return nil
	}
	bucket, _, err := storage.ParseS3URL(url)
	if err != nil {
		return nil
	}
	c := st.BucketConnection(t.Project, bucket)
	if c == nil {
		return nil // deleted since: the fleet's identity, or a clear failure
	}
	secret, err := sl.Open(c.Sealed, []byte(c.ID))
	if err != nil {
		log("a connection's secret does not open with this server's seal keys", "connection", c.ID, "err", err)
		return nil
	}
	return []api.S3Access{{Bucket: c.Bucket, Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle, AccessKeyID: c.AccessKeyID, SecretAccessKey: string(secret)}}
}
