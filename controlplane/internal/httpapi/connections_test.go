package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/webhooks"
	"github.com/ittybit-oss/ittybit/internal/seal"
	"github.com/ittybit-oss/ittybit/storage"
)

func TestConnectionRequests(t *testing.T) {
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-SECRET-value"
	var checked []storage.S3Config
	a := accessAPI(t, func(c *Config) {
		c.WebhookSender = &webhooks.Sender{Resolver: fixedResolver{"s3.example.com": "93.184.216.34", "evil.example.com": "10.1.2.3"}}
		c.Sealer = sl
		c.FleetBuckets = []string{"shared"}
		c.CheckS3 = func(_ context.Context, cfg storage.S3Config, bucket string) (string, error) {
			checked = append(checked, cfg)
			if cfg.SecretAccessKey != secret {
				return "SignatureDoesNotMatch", errors.New("access denied")
			}
			return "", nil
		}
	})
	pa, pb := mustProject(t, a, "acme"), mustProject(t, a, "bravo")
	adminA := mustKey(t, a, withKey, `{"name":"acme ops","project":"`+pa.ID+`","scopes":["admin","tasks:write","tasks:read"]}`)
	adminB := mustKey(t, a, withKey, `{"name":"bravo ops","project":"`+pb.ID+`","scopes":["admin"]}`)
	writer := mustKey(t, a, withKey, `{"name":"acme app","project":"`+pa.ID+`"}`)
	body := func(fields string) string {
		return `{"name":"media","kind":"s3","bucket":"media-a","region":"us-east-1","endpoint":"https://s3.example.com","access_key_id":"AKID"` + fields + `}`
	}

	t.Run("bad requests store nothing and never echo the secret", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			kind ittybit.ErrorKind
		}{
			{`{"name":"m","kind":"gcs","bucket":"media-a","access_key_id":"A","secret_access_key":"` + secret + `"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"Bad_Bucket","access_key_id":"A","secret_access_key":"` + secret + `"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"media-a","access_key_id":"A"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"` + strings.Repeat("x", 257) + `"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"media-a","endpoint":"http://127.0.0.1:9000","access_key_id":"A","secret_access_key":"` + secret + `"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"media-a","endpoint":"http://169.254.169.254","access_key_id":"A","secret_access_key":"` + secret + `"}`, "invalid_option"},
			{`{"name":"m","kind":"s3","bucket":"media-a","endpoint":"https://evil.example.com","access_key_id":"A","secret_access_key":"` + secret + `"}`, "invalid_option"},
			{`{"name":"m","project":"proj_nope","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"` + secret + `"}`, "forbidden"},
			{`{"name":"m","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"wrong"}`, "connection_failed"},
			{`{"name":"m","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"` + secret + `","token":"x"}`, "invalid_json"},
		} {
			w := serve(a, "POST", "/connections", tc.body, adminA.Secret)
			status := 400
			if tc.kind == "forbidden" {
				status = 403
			}
			e := wantError(t, w, status, tc.kind)
			if strings.Contains(w.Body.String(), secret) || strings.Contains(e.Message, "wrong") {
				t.Errorf("%s: the answer echoes the secret: %s", tc.body, w.Body)
			}
			if tc.kind == "connection_failed" && !strings.Contains(e.Message, "SignatureDoesNotMatch") {
				t.Errorf("%s: %q does not name the S3 error code", tc.body, e.Message)
			}
		}
		wantError(t, serve(a, "POST", "/connections", body(`,"secret_access_key":"`+secret+`"`), writer.Secret), 403, "forbidden")
		wantError(t, serve(a, "POST", "/connections", `{"name":"m","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"x"}`, withKey), 400, "invalid_option") // the operator names the project
		if w := serve(a, "GET", "/connections", "", withKey); strings.Contains(w.Body.String(), "conn_") {
			t.Errorf("a refused connection was stored: %s", w.Body)
		}
	})

	w := serve(a, "POST", "/connections", body(`,"secret_access_key":"`+secret+`"`), adminA.Secret)
	if w.Code != 201 {
		t.Fatalf("POST /connections: %d %s", w.Code, w.Body)
	}
	conn := decodeAs[api.Connection](t, w.Body.Bytes())
	if strings.Contains(w.Body.String(), secret) || conn.Project != pa.ID || conn.Bucket != "media-a" || conn.AccessKeyID != "AKID" {
		t.Errorf("connection %s", w.Body)
	}
	stored, err := a.cfg.Store.State().Connection(conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.Sealed), secret) {
		t.Fatal("the stored secret is in clear")
	}
	if got, err := sl.Open(stored.Sealed, []byte(conn.ID)); err != nil || string(got) != secret {
		t.Errorf("the sealed secret opens to %q, %v", got, err)
	}
	wantError(t, serve(a, "POST", "/connections", body(`,"secret_access_key":"`+secret+`"`), adminA.Secret), 400, "invalid_option") // one a bucket

	t.Run("another project's is absent", func(t *testing.T) {
		for _, m := range []string{"GET", "PATCH", "DELETE"} {
			wantError(t, serve(a, m, "/connections/"+conn.ID, `{"name":"x"}`, adminB.Secret), 404, "not_found")
		}
		if w := serve(a, "GET", "/connections", "", adminB.Secret); strings.Contains(w.Body.String(), conn.ID) {
			t.Errorf("project B lists A's connection: %s", w.Body)
		}
	})

	t.Run("tasks need a connection for their buckets", func(t *testing.T) {
		e := wantError(t, serve(a, "POST", "/tasks", `{"kind":"image","input":"s3://other/a.png"}`, writer.Secret), 400, "connection_required")
		if !strings.Contains(e.Message, "other") || e.Field != "input" {
			t.Errorf("%+v: want the bucket and the field named", e)
		}
		for _, ok := range []string{
			`{"kind":"image","input":"s3://media-a/a.png","output":"s3://media-a/b.jpg"}`,
			`{"kind":"image","input":"s3://shared/a.png"}`, // the fleet's bucket
			`{"kind":"image","input":"https://example.com/a.png"}`,
		} {
			if w := serve(a, "POST", "/tasks", ok, writer.Secret); w.Code != 201 {
				t.Errorf("%s: %d %s", ok, w.Code, w.Body)
			}
		}
		// The operator's tasks use the fleet's identity, as before.
		if w := serve(a, "POST", "/tasks", `{"kind":"image","input":"s3://other/a.png"}`, withKey); w.Code != 201 {
			t.Errorf("the operator's task: %d %s", w.Code, w.Body)
		}
	})

	t.Run("assignments carry the credentials of the step's bucket only", func(t *testing.T) {
		w := serve(a, "POST", "/tasks", `{"kind":"image","input":"https://example.com/a.png","output":"s3://media-a/out.jpg"}`, writer.Secret)
		task := decodeAs[api.Task](t, w.Body.Bytes())
		for step, want := range map[string]int{api.StepProbe: 0, api.StepIngest: 0, api.StepUpload: 1} {
			got := S3Access(a.cfg.Store.State(), sl, &task, step, t.Logf)
			if len(got) != want || want == 1 && (got[0].SecretAccessKey != secret || got[0].Bucket != "media-a") {
				t.Errorf("%s: %v", step, got)
			}
		}
		if s := (api.S3Access{Bucket: "b", SecretAccessKey: secret}).String(); strings.Contains(s, secret) {
			t.Errorf("S3Access prints its secret: %s", s)
		}
	})

	t.Run("a change is tried before it is kept", func(t *testing.T) {
		wantError(t, serve(a, "PATCH", "/connections/"+conn.ID, `{"secret_access_key":"wrong"}`, adminA.Secret), 400, "connection_failed")
		wantError(t, serve(a, "PATCH", "/connections/"+conn.ID, `{"bucket":"media-b"}`, adminA.Secret), 400, "invalid_option")
		n := len(checked)
		w := serve(a, "PATCH", "/connections/"+conn.ID, `{"region":"eu-west-1"}`, adminA.Secret)
		if w.Code != 200 || len(checked) != n+1 || checked[n].SecretAccessKey != secret || checked[n].Region != "eu-west-1" {
			t.Errorf("a change of region: %d %s, tried with %+v", w.Code, w.Body, checked[n:])
		}
		if w := serve(a, "DELETE", "/connections/"+conn.ID, "", adminA.Secret); w.Code != 200 {
			t.Errorf("DELETE: %d %s", w.Code, w.Body)
		}
		wantError(t, serve(a, "POST", "/tasks", `{"kind":"image","input":"s3://media-a/a.png"}`, writer.Secret), 400, "connection_required")
	})
}

func TestConnectionsWithoutSealKey(t *testing.T) {
	a := accessAPI(t, func(c *Config) {
		c.CheckS3 = func(context.Context, storage.S3Config, string) (string, error) { return "", nil }
	})
	p := mustProject(t, a, "acme")
	wantError(t, serve(a, "POST", "/connections", `{"name":"m","project":"`+p.ID+`","kind":"s3","bucket":"media-a","access_key_id":"A","secret_access_key":"x"}`, withKey), 503, "unavailable")
}

// fixedResolver answers each name with one address.
type fixedResolver map[string]string

func (r fixedResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := r[host]
	if !ok {
		return nil, fmt.Errorf("no such host %s", host)
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}
