package agent_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/agent"
	"github.com/ittybit-oss/ittybit/encoders/probe"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/internal/discover/dnstest"
	poll "github.com/ittybit-oss/ittybit/internal/wait"
	"github.com/ittybit-oss/ittybit/storage"
)

// TestServersByDNS: an agent given a DNS name (dns+srv://) for its servers
// waits while the name answers nothing, and registers once it does, as
// agents started beside a cluster that is still forming must.
func TestServersByDNS(t *testing.T) {
	dir := t.TempDir()
	srv, managed := mustServer(t, dir)
	d := dnstest.Start(t)
	prober := &probe.Prober{}
	ag, err := agent.New(agent.Config{
		Servers: []string{"dns+srv://_http._tcp.ittybit.test"}, Resolver: discover.NewResolver(d.Addr),
		Name: "x", Token: testToken, WorkDir: filepath.Join(dir, "work"),
		Managed: managed, Fetcher: storage.NewFetcher(storage.FetchConfig{}), Prober: prober, Encoder: softwareEncoder{nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ag.Run(ctx)
	}()
	defer func() { stop(); <-done }()
	time.Sleep(500 * time.Millisecond) // a moment in which the name answers nothing
	if ag.Registered() {
		t.Fatal("registered before the name answered")
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	p, _ := net.LookupPort("tcp", port)
	d.SetA("s.ittybit.test", "127.0.0.1")
	d.SetSRV("_http._tcp.ittybit.test", dnstest.SRV{Target: "s.ittybit.test", Port: uint16(p)})
	poll.Until(t, "the agent to find the server by its name and register", 30*time.Second, ag.Registered)
}
