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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return "down", 0
	}
	resp, err := a.proxy.client.Do(req)
	if err != nil {
		return "down", 0
	}
	defer resp.Body.Close()
	var h struct {
		Status       string `json:"status"`
		AppliedIndex uint64 `json:"applied_index"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4096)).Decode(&h) != nil || h.Status != "ok" {
		return "down", 0
	}
	return "ok", h.AppliedIndex
}
