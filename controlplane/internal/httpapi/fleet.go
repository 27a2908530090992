package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"
)

// fleetProbeTimeout bounds how long GET /fleet waits for a server's
// /healthz: a server that does not answer in time is down.
const fleetProbeTimeout = time.Second

// fleet answers GET /fleet on the leader: the scheduler's view of the
// agents, queue and throughput, and each server of the control plane as
// its /healthz answers now.
func (a *API) fleet(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Scheduler == nil {
		return ittybit.Errorf(ittybit.ErrUnavailable, "this server schedules no work, so it knows no fleet")
	}
	f := a.cfg.Scheduler.Fleet()
	servers := a.cfg.Store.State().Servers()
	if voters, err := a.cfg.Store.Peers(); err == nil {
		// A server that left is still in the table; only voters count.
		servers = slices.DeleteFunc(servers, func(s state.Server) bool { _, ok := voters[s.ID]; return !ok })
	}
	f.Servers = make([]api.ServerInfo, len(servers))
	self := a.cfg.Store.NodeID()
	ctx, cancel := context.WithTimeout(r.Context(), fleetProbeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range servers {
		info := &f.Servers[i]
		*info = api.ServerInfo{ID: s.ID, HTTPAddr: s.HTTPAddr, Leader: s.ID == self, Health: "down"}
		if s.ID == self {
			info.Health, info.AppliedIndex = "ok", a.cfg.Store.AppliedIndex()
			continue
		}
		if s.HTTPAddr == "" {
			continue
		}
		wg.Go(func() { info.Health, info.AppliedIndex = a.probe(ctx, s.HTTPAddr) })
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, f)
	return nil
}

// probe asks a server's /healthz how it is.
func (a *API) probe(ctx context.Context, addr string) (string, uint64) {
	h, ok := a.health(ctx, addr)
	if !ok {
		return "down", 0
	}
	return "ok", h.AppliedIndex
}

// health is a server's answer to GET /healthz.
type health struct {
	Status       string `json:"status"`
	AppliedIndex uint64 `json:"applied_index"`
	// Log is the newest Raft entry type the server applies (0 from a
	// release before it said).
	Log int `json:"log"`
}

// health asks the server at addr for its /healthz; ok is false when it
// does not answer ok.
func (a *API) health(ctx context.Context, addr string) (health, bool) {
	var h health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return h, false
	}
	resp, err := a.proxy.client.Do(req)
	if err != nil {
		return h, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4096)).Decode(&h) != nil || h.Status != "ok" {
		return h, false
	}
	return h, true
}

// WatchVoters runs on the leader (store.OnLeader): once a second it asks
// every voter which Raft entry types it applies, and tells the store the
// newest they all do, so that a new entry type is written only once every
// voter can apply it (a rolling upgrade has servers of two releases for a
// while). A voter that does not answer counts as knowing none.
func (a *API) WatchVoters(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		epoch := a.cfg.Store.VotersEpoch()
		a.cfg.Store.SetVotersApply(a.votersApply(ctx), epoch)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// votersApply is the newest entry type every voter applies: this
// release's, lowered by each other voter's /healthz.
func (a *API) votersApply(ctx context.Context) int {
	voters, err := a.cfg.Store.Peers()
	if err != nil {
		return 0
	}
	addrs := map[string]string{}
	for _, s := range a.cfg.Store.State().Servers() {
		addrs[s.ID] = s.HTTPAddr
	}
	self := a.cfg.Store.NodeID()
	least := store.LogVersion
	ctx, cancel := context.WithTimeout(ctx, fleetProbeTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id := range voters {
		if id == self {
			continue
		}
		wg.Go(func() {
			v := 0
			if addr := addrs[id]; addr != "" {
				if h, ok := a.health(ctx, addr); ok {
					v = h.Log
				}
			}
			mu.Lock()
			least = min(least, v)
			mu.Unlock()
		})
	}
	wg.Wait()
	return least
}
