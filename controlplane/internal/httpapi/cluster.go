package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// PeerInfo is what GET /internal/peer says of a server: enough for a
// server started with --bootstrap-expect to decide whether a cluster
// exists yet, and with whom to form one.
type PeerInfo struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	// Member: the server belongs to a cluster (its Raft configuration
	// names servers); a fresh one waiting to bootstrap is not.
	Member bool `json:"member"`
	// Leader is the leader's id, when one is known.
	Leader string `json:"leader,omitempty"`
	// ClusterID names the cluster the server's data belongs to.
	ClusterID string `json:"cluster_id,omitempty"`
}

// peer answers GET /internal/peer, on this server itself.
func (a *API) peer(w http.ResponseWriter, r *http.Request) error {
	st := a.cfg.Store
	leader, _, _ := st.Leader()
	id, _ := st.State().Meta(state.MetaClusterID)
	writeJSON(w, http.StatusOK, PeerInfo{NodeID: st.NodeID(), RaftAddr: st.RaftAddr(), Member: st.Member(), Leader: leader, ClusterID: id})
	return nil
}

// joinRequest is the body of POST /internal/join.
type joinRequest struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// ClusterID is the cluster the joining server's data belongs to;
	// empty for a server with no data.
	ClusterID string `json:"cluster_id,omitempty"`
}

// join adds a server to the cluster (on the leader). A server whose data
// belongs to another cluster is refused: adding it would mix two
// histories.
func (a *API) join(w http.ResponseWriter, r *http.Request) error {
	var req joinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.NodeID == "" || req.RaftAddr == "" {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, `join takes {"node_id", "raft_addr", "http_addr", "cluster_id"}`)
	}
	if ours, ok := a.cfg.Store.State().Meta(state.MetaClusterID); ok && req.ClusterID != "" && req.ClusterID != ours {
		return ittybit.Errorf(ittybit.ErrClusterMismatch,
			"server %s holds the data of cluster %s, not of this cluster (%s): start it with an empty data folder to join this cluster, or point --join at its own cluster",
			req.NodeID, req.ClusterID, ours)
	}
	if err := a.cfg.Store.Join(r.Context(), req.NodeID, req.RaftAddr, req.HTTPAddr); err != nil {
		return elsewhere(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "joined", "leader": a.cfg.Store.NodeID()})
	return nil
}

// leave removes a server from the cluster (on the leader): the server
// itself asks, once it has handed leadership off.
func (a *API) leave(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		NodeID string `json:"node_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.NodeID == "" {
		return ittybit.Errorf(ittybit.ErrInvalidJSON, `leave takes {"node_id"}`)
	}
	if req.NodeID == a.cfg.Store.NodeID() {
		// The leader leaving: hand off, and let the new leader remove it.
		if _, err := a.cfg.Store.HandOff(); err != nil {
			return ittybit.Errorf(ittybit.ErrUnavailable, "the leader cannot leave before it hands leadership off: %v", err)
		}
		return errElsewhere
	}
	if err := a.cfg.Store.Leave(req.NodeID); err != nil {
		return elsewhere(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "left", "node_id": req.NodeID})
	return nil
}

// leaveSelf takes this server out of the cluster, then stops it.
func (a *API) leaveSelf(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.LeaveSelf == nil {
		return ittybit.Errorf(ittybit.ErrUnavailable, "this server cannot leave by request")
	}
	if err := a.cfg.LeaveSelf(r.Context()); err != nil {
		return ittybit.Errorf(ittybit.ErrUnavailable, "leave: %v", err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "left", "node_id": a.cfg.Store.NodeID()})
	return nil
}
