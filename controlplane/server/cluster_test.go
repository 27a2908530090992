package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/internal/discover"
	"github.com/ittybit-oss/ittybit/internal/discover/dnstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// srvName is the SRV name the servers of TestBootstrapExpect find each
// other by, as a Kubernetes headless service would answer it.
const srvName = "_http._tcp.ittybit-server-internal.test"

// syncBuffer is a log sink safe for the servers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fleetDNS is the test's DNS: each server's name answers its address,
// the SRV name every server's HTTP port.
type fleetDNS struct {
	*dnstest.Server
	mu    sync.Mutex
	ports map[string]uint16
}

// publish adds (or moves) a server under the SRV name.
func (d *fleetDNS) publish(id, addr string) {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ports[id] = uint16(p)
	d.SetA(id+".test", "127.0.0.1")
	var recs []dnstest.SRV
	for _, id := range slices.Sorted(maps.Keys(d.ports)) {
		recs = append(recs, dnstest.SRV{Target: id + ".test", Port: d.ports[id]})
	}
	d.SetSRV(srvName, recs...)
}

// expectServer starts a server as every server of a --bootstrap-expect
// cluster starts: the same arguments but its id and folder.
func expectServer(t *testing.T, d *fleetDNS, dir, id string, expect int, logs *syncBuffer) (*Server, error) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	s, err := Open(Config{
		NodeID: id, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, id),
		BootstrapExpect: expect, Join: []string{"dns+srv://" + srvName}, Resolver: discover.NewResolver(d.Addr),
		APIKeys: []string{testKey}, NodeTokens: []string{testToken}, JoinToken: testToken, Logger: logger,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
	})
	if err == nil {
		d.publish(id, s.Addr())
	}
	return s, err
}

// oneCluster checks that servers form one cluster of exactly want: the
// same leader, the same voters, the same cluster id, on every server.
func oneCluster(servers []*Server, want []string) error {
	var leader, cluster string
	for _, s := range servers {
		peers, err := s.Store().Peers()
		if err != nil {
			return err
		}
		if got := slices.Sorted(maps.Keys(peers)); !slices.Equal(got, want) {
			return fmt.Errorf("%s's voters are %v, want %v", s.cfg.NodeID, got, want)
		}
		id, _, ok := s.Store().Leader()
		if !ok {
			return fmt.Errorf("%s knows no leader", s.cfg.NodeID)
		}
		cid, ok := s.Store().State().Meta(state.MetaClusterID)
		if !ok {
			return fmt.Errorf("%s has no cluster id yet", s.cfg.NodeID)
		}
		if leader == "" {
			leader, cluster = id, cid
		}
		if id != leader || cid != cluster {
			return fmt.Errorf("%s follows %s in cluster %s; another follows %s in %s", s.cfg.NodeID, id, cid, leader, cluster)
		}
	}
	return nil
}

func closeAll(servers ...*Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		if s != nil {
			wg.Go(func() { _ = s.Close() })
		}
	}
	wg.Wait()
}

// keptLogs returns a buffer for a server's logs, whose last 8 KiB the
// test prints if it fails.
func keptLogs(t *testing.T, name string) *syncBuffer {
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			out := logs.String()
			t.Logf("the last of %s's logs:\n%s", name, out[max(0, len(out)-8<<10):])
		}
	})
	return logs
}

// TestBootstrapExpect starts three servers with identical arguments
// (--bootstrap-expect 3, joined by a DNS SRV name) at the same moment, 20
// times over: one cluster forms each time. Then one is wiped and rejoins,
// a fourth joins, and one leaves.
func TestBootstrapExpect(t *testing.T) {
	d := &fleetDNS{Server: dnstest.Start(t), ports: map[string]uint16{}}
	ids := []string{"s1", "s2", "s3"}
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	var servers []*Server
	var dir string
	for round := range rounds {
		d.ports = map[string]uint16{}
		d.SetSRV(srvName)
		dir = t.TempDir()
		servers = make([]*Server, len(ids))
		errs := make([]error, len(ids))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				<-start
				var logs *syncBuffer
				if round == rounds-1 {
					logs = keptLogs(t, id)
				}
				servers[i], errs[i] = expectServer(t, d, dir, id, 3, logs)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				closeAll(servers...)
				t.Fatalf("round %d: open %s: %v", round, ids[i], err)
			}
		}
		wait.For(t, fmt.Sprintf("round %d: one cluster of three", round), 30*time.Second, func() error { return oneCluster(servers, ids) })
		if round < rounds-1 {
			closeAll(servers...)
		}
	}
	defer func() { closeAll(servers...) }()

	// Wiped: s2 loses its data folder and starts again, on new ports, with
	// the same arguments. It must not bootstrap a second cluster: it
	// finds the cluster and joins it, under its new address.
	oldPeers, _ := servers[0].Store().Peers()
	_ = servers[1].Close()
	if err := os.RemoveAll(filepath.Join(dir, "s2")); err != nil {
		t.Fatal(err)
	}
	s2, err := expectServer(t, d, dir, "s2", 3, keptLogs(t, "s2 (wiped)"))
	if err != nil {
		t.Fatalf("restart s2: %v", err)
	}
	servers[1] = s2
	wait.For(t, "the wiped server to rejoin", 30*time.Second, func() error {
		if err := oneCluster(servers, ids); err != nil {
			return err
		}
		if peers, _ := servers[0].Store().Peers(); peers["s2"] == oldPeers["s2"] {
			return fmt.Errorf("s2's Raft address is still the old %s", peers["s2"])
		}
		return nil
	})

	// A fourth server, started the same way, joins the running cluster.
	s4, err := expectServer(t, d, dir, "s4", 3, keptLogs(t, "s4"))
	if err != nil {
		t.Fatalf("open s4: %v", err)
	}
	servers = append(servers, s4)
	four := []string{"s1", "s2", "s3", "s4"}
	wait.For(t, "a fourth server to join", 30*time.Second, func() error { return oneCluster(servers, four) })

	// The leader leaves (POST /internal/self/leave, as `ittybit server
	// leave` asks): it hands off, is removed, and says it may stop.
	var leaving *Server
	for _, s := range servers {
		if s.Store().IsLeader() {
			leaving = s
		}
	}
	if leaving == nil {
		t.Fatal("no leader")
	}
	req, _ := http.NewRequest(http.MethodPost, leaving.URL()+"/internal/self/leave", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("leave: %s", resp.Status)
	}
	select {
	case err := <-leaving.Fatal():
		if !Left(err) {
			t.Fatalf("after leaving, Fatal says %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server that left never said it could stop")
	}
	_ = leaving.Close()
	rest := slices.DeleteFunc(slices.Clone(servers), func(s *Server) bool { return s == leaving })
	restIDs := slices.DeleteFunc(slices.Clone(four), func(id string) bool { return id == leaving.cfg.NodeID })
	servers = rest
	wait.For(t, "three voters after one left", 30*time.Second, func() error { return oneCluster(rest, restIDs) })
	// The cluster still takes writes.
	if code, body := do(t, "POST", rest[0].URL()+"/tasks", `{"input":"https://example.com/a.mov","kind":"video"}`, "Content-Type", "application/json"); code != http.StatusCreated {
		t.Fatalf("create after the leave: %d %s", code, body)
	}
}

// TestBootstrapExpectWaits: a server whose --join never answers waits,
// forms no cluster of its own, and says whom it waits for.
func TestBootstrapExpectWaits(t *testing.T) {
	d := &fleetDNS{Server: dnstest.Start(t), ports: map[string]uint16{}}
	logs := &syncBuffer{}
	s, err := expectServer(t, d, t.TempDir(), "lonely", 3, logs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait.For(t, "the server to say whom it waits for", 20*time.Second, func() error {
		out := logs.String()
		if !strings.Contains(out, "waiting for 2 more server(s) to bootstrap a cluster of 3") || !strings.Contains(out, "dns+srv://"+srvName) {
			return fmt.Errorf("logs so far: %s", out)
		}
		return nil
	})
	if s.Store().Member() {
		t.Fatal("a server waiting for two more formed a cluster by itself")
	}
	if _, _, ok := s.Store().Leader(); ok {
		t.Fatal("a server waiting for two more has a leader")
	}
}

// TestJoinOtherClusterRefused: a server holding another cluster's data is
// refused when it asks to join, and stops with a clear message.
func TestJoinOtherClusterRefused(t *testing.T) {
	dir := t.TempDir()
	// Cluster A: one server, x. Its data keeps A's id.
	x := mustServer(t, dir, "x", true)
	wait.For(t, "cluster A's id in x's folder", 20*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, "x", clusterIDFile))
		return err
	})
	aID := x.clusterID()
	_ = x.Close()
	// Cluster B: one server, b.
	b := mustServer(t, dir, "b", true)
	defer b.Close()
	wait.Until(t, "b to lead", 20*time.Second, b.Store().LeaderReady)
	wait.For(t, "cluster B's id", 20*time.Second, func() error {
		if b.clusterID() == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	// x again, with A's data, told to join B.
	x = mustServer(t, dir, "x", false, b.URL())
	defer x.Close()
	select {
	case err := <-x.Fatal():
		if err == nil || Left(err) || !strings.Contains(err.Error(), "holds the data of cluster "+aID) || !strings.Contains(err.Error(), "empty data folder") {
			t.Fatalf("x stopped with %v; want the other cluster named, and what to do", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a server with another cluster's data was not refused")
	}
	if peers, _ := b.Store().Peers(); len(peers) != 1 {
		t.Fatalf("cluster B's voters: %v, want b alone", peers)
	}
}
