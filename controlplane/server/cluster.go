package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/internal/httpapi"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
	"github.com/ittybit-oss/ittybit/controlplane/internal/tunnel"
	"github.com/ittybit-oss/ittybit/internal/discover"
)

// How a cluster forms and changes.
//
// With Bootstrap, a server with no data forms a cluster of one; the
// others Join it. With BootstrapExpect N, every server starts the same
// way: each looks its Join targets up (URLs, or DNS names that a
// Kubernetes headless service or a Consul service answers), asks every
// server found how it stands (GET /internal/peer), and
//
//   - when one of them already belongs to a cluster, joins that cluster;
//   - when N servers with no cluster answer (itself among them), the N with
//     the lowest node ids bootstrap with the same configuration, the N of
//     them as voters: Raft accepts that identical configuration on each,
//     and one election follows. Any two servers that bootstrap name the
//     same N, so one cluster forms, once, however they start;
//   - otherwise waits, saying whom it found and whom it waits for.
//
// A server that restarts with its data is a member already and only
// re-announces its addresses. The first leader records a cluster id; a
// server whose data belongs to another cluster is refused when it asks to
// join (409 cluster_mismatch) and stops with that message.

// errLeft is what Fatal reports after the server left the cluster.
var errLeft = errors.New("left the cluster")

// peerClient is the HTTP client for other servers (through the fault
// tests' proxy when one is set).
func (s *Server) peerClient() *http.Client {
	c := &http.Client{Timeout: 20 * time.Second}
	if s.cfg.PeerProxy != "" {
		c.Transport = &http.Transport{DialContext: tunnel.Via(s.cfg.PeerProxy)}
	}
	return c
}

// ensureClusterID names the cluster, once, on the first leader.
func (s *Server) ensureClusterID(ctx context.Context) {
	if _, ok := s.store.State().Meta(state.MetaClusterID); ok {
		return
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		s.log.Error("make cluster id", "err", err)
		return
	}
	if _, err := s.store.SetMeta(ctx, state.MetaClusterID, hex.EncodeToString(b[:])); err != nil {
		s.log.Warn("record cluster id", "err", err)
	}
}

// clusterIDFile keeps, in the data folder, the id of the cluster the data
// belongs to: a restarted server knows it before it has applied its log.
const clusterIDFile = "cluster-id"

// clusterID is the id of the cluster this server's data belongs to, ""
// when it has none yet.
func (s *Server) clusterID() string {
	if id, ok := s.store.State().Meta(state.MetaClusterID); ok {
		return id
	}
	b, _ := os.ReadFile(filepath.Join(s.cfg.DataDir, clusterIDFile))
	return strings.TrimSpace(string(b))
}

// keepClusterID writes the cluster's id into the data folder once the
// state holds it.
func (s *Server) keepClusterID(ctx context.Context) {
	path := filepath.Join(s.cfg.DataDir, clusterIDFile)
	for {
		if id, ok := s.store.State().Meta(state.MetaClusterID); ok {
			if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == id {
				return
			}
			if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
				s.log.Warn("keep the cluster id in the data folder", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// form finds the other servers of a --bootstrap-expect cluster and
// bootstraps with them, or joins the cluster they already formed.
func (s *Server) form(ctx context.Context) {
	client := s.peerClient()
	expect := s.cfg.BootstrapExpect
	self := httpapi.PeerInfo{NodeID: s.cfg.NodeID, RaftAddr: s.store.RaftAddr()}
	wait := 250 * time.Millisecond
	lastSaid := time.Time{}
	for ctx.Err() == nil {
		if s.store.Member() {
			// Another server bootstrapped with this one among the voters,
			// or the cluster added it.
			s.log.Info("member of the cluster", "voters", expect)
			s.join(ctx)
			return
		}
		found := discover.Resolve(ctx, s.cfg.Resolver, s.targets)
		fresh := map[string]httpapi.PeerInfo{self.NodeID: self}
		var members []string
		silent := maps.Clone(found.Failed)
		for _, base := range found.URLs {
			info, err := getPeer(ctx, client, base, s.cfg.JoinToken)
			if err != nil {
				silent[base] = err
				continue
			}
			if info.Member {
				members = append(members, base)
				continue
			}
			if other, dup := fresh[info.NodeID]; dup && other.RaftAddr != info.RaftAddr {
				s.log.Error("two servers have the same node id: give each its own --node-id", "node_id", info.NodeID, "raft_addrs", []string{other.RaftAddr, info.RaftAddr})
				continue
			}
			fresh[info.NodeID] = info
		}
		if len(members) > 0 {
			s.log.Info("a cluster exists: joining it", "via", members)
			s.joinVia(ctx, client, func() []string { return members })
			return
		}
		if len(fresh) >= expect {
			ids := slices.Sorted(maps.Keys(fresh))[:expect]
			if slices.Contains(ids, self.NodeID) {
				voters := map[string]string{}
				for _, id := range ids {
					voters[id] = fresh[id].RaftAddr
				}
				err := s.store.BootstrapWith(voters)
				switch {
				case err == nil:
					s.log.Info("bootstrapped the cluster", "voters", ids)
				case errors.Is(err, store.ErrHasState):
					s.log.Info("not bootstrapping: this server has state already")
				default:
					s.log.Error("bootstrap", "err", err)
					time.Sleep(wait)
					continue
				}
				s.join(ctx)
				return
			}
			// More servers than expected: the first N form the cluster;
			// this one joins it once it exists.
		}
		if time.Since(lastSaid) >= 10*time.Second {
			lastSaid = time.Now()
			s.log.Warn(fmt.Sprintf("waiting for %d more server(s) to bootstrap a cluster of %d", max(expect-len(fresh), 0), expect),
				"found", slices.Sorted(maps.Keys(fresh)), "join", s.cfg.Join, "no_answer", describe(silent))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// describe lists what did not answer and why, for a log line.
func describe(errs map[string]error) []string {
	out := make([]string, 0, len(errs))
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		out = append(out, k+": "+errs[k].Error())
	}
	return out
}

// getPeer asks a server how it stands.
func getPeer(ctx context.Context, c *http.Client, base, token string) (httpapi.PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/internal/peer", nil)
	if err != nil {
		return httpapi.PeerInfo{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return httpapi.PeerInfo{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return httpapi.PeerInfo{}, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var info httpapi.PeerInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return httpapi.PeerInfo{}, fmt.Errorf("read peer info: %w", err)
	}
	return info, nil
}

// join announces this server to the cluster through its Join targets
// until one accepts it: a new server is added as a voter, a restarted one
// has its addresses brought up to date.
func (s *Server) join(ctx context.Context) {
	if len(s.targets) == 0 {
		return
	}
	looked := 0
	s.joinVia(ctx, s.peerClient(), func() []string {
		looked++
		found := discover.Resolve(ctx, s.cfg.Resolver, s.targets)
		if looked == 1 || looked%20 == 0 {
			for t, err := range found.Failed {
				s.log.Warn("join: look-up failed; retrying", "target", t, "err", err)
			}
		}
		return found.URLs
	})
}

// joinVia joins through the servers bases names on each try until one
// accepts.
func (s *Server) joinVia(ctx context.Context, client *http.Client, bases func() []string) {
	wait := 200 * time.Millisecond
	for attempt := 1; ctx.Err() == nil; attempt++ {
		if s.joinOnce(ctx, client, bases(), attempt) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 3*time.Second)
	}
}

// joinOnce asks each server in turn to add this one. It reports whether
// one did, or whether the attempt is over for good (another cluster's
// data: Fatal says so).
func (s *Server) joinOnce(ctx context.Context, client *http.Client, bases []string, attempt int) bool {
	if s.store.Member() && s.clusterID() == "" {
		// A server with state must say which cluster it belongs to, or it
		// could be added to another and mix two histories: wait until its
		// cluster's leader has named it (every leader does).
		if attempt == 1 || attempt%20 == 0 {
			s.log.Info("join: waiting to learn this server's cluster id from its own cluster first")
		}
		return false
	}
	body, _ := json.Marshal(map[string]string{"node_id": s.cfg.NodeID, "raft_addr": s.store.RaftAddr(), "http_addr": s.cfg.HTTPAdvertise, "cluster_id": s.clusterID()})
	for _, base := range bases {
		err := postJSON(ctx, client, base, "/internal/join", s.cfg.JoinToken, body)
		if err == nil {
			s.log.Info("joined the cluster", "via", base)
			return true
		}
		var mismatch *refusedError
		if errors.As(err, &mismatch) && mismatch.status == http.StatusConflict {
			s.log.Error("join refused: this server's data belongs to another cluster", "via", base, "err", err)
			s.stop(fmt.Errorf("join refused by %s: %w", base, err))
			return true
		}
		if attempt == 1 || attempt%20 == 0 {
			s.log.Warn("join failed; retrying", "via", base, "attempt", attempt, "err", err)
		}
	}
	return false
}

// refusedError is a server's answer other than 200.
type refusedError struct {
	status int
	msg    string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.msg)
}

func postJSON(ctx context.Context, c *http.Client, base, path, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return &refusedError{status: resp.StatusCode, msg: string(bytes.TrimSpace(msg))}
	}
	return nil
}

// Leave takes this server out of the cluster: it hands leadership off
// when it leads, then asks the leader (through its own API, which
// forwards) to remove it from the voters. The cluster then needs a
// quorum of the servers that remain. Close it afterwards.
func (s *Server) Leave(ctx context.Context) error {
	peers, err := s.store.Peers()
	if err != nil {
		return err
	}
	if _, ok := peers[s.cfg.NodeID]; !ok {
		return nil
	}
	if len(peers) == 1 {
		return errors.New("the only server of a cluster cannot leave it")
	}
	if _, err := s.store.HandOff(); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"node_id": s.cfg.NodeID})
	client := &http.Client{Timeout: 10 * time.Second}
	token := s.cfg.JoinToken
	if token == "" && len(s.cfg.NodeTokens) > 0 {
		token = s.cfg.NodeTokens[0]
	}
	wait := 100 * time.Millisecond
	for {
		err := postJSON(ctx, client, s.URL(), "/internal/leave", token, body)
		if err == nil {
			s.log.Info("left the cluster")
			return nil
		}
		s.log.Warn("leave failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: %w (last: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// leaveAndStop serves POST /internal/self/leave: leave, then report on
// Fatal that the server should stop.
func (s *Server) leaveAndStop(ctx context.Context) error {
	if err := s.Leave(ctx); err != nil {
		return err
	}
	s.stop(errLeft)
	return nil
}

// stop reports on Fatal why the server cannot go on (or errLeft).
func (s *Server) stop(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// Fatal reports, once, why this server should stop: its data belongs to
// another cluster, or it left the cluster (ErrLeft).
func (s *Server) Fatal() <-chan error { return s.fatal }

// Left reports whether err, from Fatal, says the server left the cluster
// as asked (a clean stop).
func Left(err error) bool { return errors.Is(err, errLeft) }
