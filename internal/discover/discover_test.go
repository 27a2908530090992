package discover_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/internal/discover/dnstest"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, kind, want string // want: URL, or Name:Port, or the error's words
	}{
		{"http://10.0.0.1:8080", "url", "http://10.0.0.1:8080"},
		{"https://a.example:443/", "url", "https://a.example:443"},
		{"dns://ittybit-server-internal:8080", "dns", "ittybit-server-internal:8080"},
		{"dns+srv://_http._tcp.ittybit.default.svc", "srv", "_http._tcp.ittybit.default.svc:"},
		{"10.0.0.1:8080", "", "accepted: http://HOST:PORT"},
		{"http://10.0.0.1", "", "names no port"},
		{"dns://name", "", "dns:// takes NAME:PORT"},
		{"dns://name:99999", "", "not a port number"},
		{"dns+srv://name:53", "", "takes a name only"},
		{"ftp://a:21", "", `scheme "ftp" is not accepted`},
		{"http://a:1/path", "", "not a server address"},
	} {
		got, err := discover.Parse(tc.in)
		switch {
		case tc.kind == "":
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("Parse(%q) = %v, want an error naming it and saying %q", tc.in, err, tc.want)
			}
		case err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case got.Kind != tc.kind || (got.URL != tc.want && got.Name+":"+got.Port != tc.want):
			t.Errorf("Parse(%q) = %+v, want kind %s, %s", tc.in, got, tc.kind, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	d := dnstest.Start(t)
	d.SetA("servers.test", "127.0.0.3", "127.0.0.1")
	d.SetA("s1.test", "127.0.0.1")
	d.SetA("s2.test", "127.0.0.2")
	d.SetSRV("_ittybit._tcp.test", dnstest.SRV{Target: "s2.test", Port: 8082}, dnstest.SRV{Target: "s1.test", Port: 8081})
	d.SetSRV("_gone._tcp.test", dnstest.SRV{Target: "nowhere.test", Port: 1})
	ts, err := discover.ParseAll([]string{
		"dns://servers.test:8080", "dns+srv://_ittybit._tcp.test", "http://127.0.0.1:8081",
		"dns://missing.test:8080", "dns+srv://_gone._tcp.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !discover.Dynamic(ts) || discover.Dynamic(ts[2:3]) {
		t.Error("Dynamic: DNS targets are dynamic, URLs are not")
	}
	res := discover.Resolve(context.Background(), discover.NewResolver(d.Addr), ts)
	want := []string{"http://127.0.0.1:8080", "http://127.0.0.3:8080", "http://127.0.0.1:8081", "http://127.0.0.2:8082"}
	if !slices.Equal(res.URLs, want) {
		t.Errorf("URLs %v, want %v (sorted per target, each once)", res.URLs, want)
	}
	if len(res.Failed) != 2 || res.Failed["dns://missing.test:8080"] == nil || res.Failed["dns+srv://_gone._tcp.test"] == nil {
		t.Errorf("Failed %v, want the missing name and the SRV whose target is unknown", res.Failed)
	}
	// The names are asked again each time: a new answer is seen.
	d.SetA("servers.test", "127.0.0.9")
	res = discover.Resolve(context.Background(), discover.NewResolver(d.Addr), ts[:1])
	if !slices.Equal(res.URLs, []string{"http://127.0.0.9:8080"}) {
		t.Errorf("after the answer changed: %v", res.URLs)
	}
}
