package httpapi

import (
	"github.com/ittybit-oss/ittybit/controlplane/internal/store"

	"net/http"

	"github.com/ittybit-oss/ittybit"
)

// healthz answers while the process is alive.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": a.cfg.Store.NodeID(), "applied_index": a.cfg.Store.AppliedIndex(), "state_index": a.cfg.Store.StateIndex(), "log": store.LogVersion})
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
