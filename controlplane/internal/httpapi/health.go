package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/ittybit-oss/ittybit"
)

// healthz answers while the process is alive.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": a.cfg.Store.NodeID(), "applied_index": a.cfg.Store.AppliedIndex()})
	return nil
}

// readyz answers 200 once a leader is known (and any extra condition
// holds), 503 otherwise.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	id, _, ok := a.cfg.Store.Leader()
	if !ok {
		return ittybit.Errorf(ittybit.ErrUnavailable, "no leader is known yet")
	}
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(); err != nil {
			return ittybit.Errorf(ittybit.ErrUnavailable, "%v", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "node": a.cfg.Store.NodeID(), "leader": id})
	return nil
}

// joinRequest is the body of POST /internal/join.
type joinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// join adds a server to the cluster (on the leader).
func (a *API) join(w http.ResponseWriter, r *http.Request) error {
	var req joinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.NodeID == "" || req.RaftAddr == "" {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, `join takes {"node_id", "raft_addr", "http_addr"}`)
	}
	if err := a.cfg.Store.Join(r.Context(), req.NodeID, req.RaftAddr, req.HTTPAddr); err != nil {
		return elsewhere(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "joined", "leader": a.cfg.Store.NodeID()})
	return nil
}

// localState describes this node's own copy of the state (not the
// leader's): how many tasks and a hash of them, to compare nodes.
func (a *API) localState(w http.ResponseWriter, r *http.Request) error {
	st := a.cfg.Store.State()
	writeJSON(w, http.StatusOK, map[string]any{
		"node": a.cfg.Store.NodeID(), "leader": a.cfg.Store.IsLeader(),
		"tasks": st.CountTasks(), "hash": st.Hash(),
	})
	return nil
}
