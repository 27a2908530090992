package store

import (
	"encoding/json"
	"fmt"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// commandType is the first byte of every log entry. The values are
// append-only: a type once used never changes meaning, so that old logs and
// snapshots still apply.
type commandType uint8

const (
	cmdCreateTasks    commandType = 1
	cmdCancelTask     commandType = 2
	cmdUpsertServer   commandType = 3
	cmdExpireRequests commandType = 4
	cmdRegisterNode   commandType = 5
	cmdSetNodeStatus  commandType = 6
	cmdStepUpdates    commandType = 7
	cmdSetMeta        commandType = 8
	// cmdCreateSeeds replaces cmdCreateTasks for new entries: tasks as
	// seeds, built by the FSM. cmdCreateTasks still applies in old logs.
	cmdCreateSeeds commandType = 9
	// cmdSplitUpdates is a step_updates batch that splits a step or moves
	// one of its parts: a node of a version before parts would ignore such
	// updates and fork the state, so they travel under a type it stops at.
	// Applied exactly as cmdStepUpdates; old logs still hold them.
	cmdSplitUpdates commandType = 10
	// cmdPartUpdates replaces cmdSplitUpdates for new entries: a part may
	// run as two copies at once (a backup of a straggler), whose updates
	// a node of the split_updates version would refuse and so fork the
	// state. Applied exactly as cmdStepUpdates.
	cmdPartUpdates commandType = 11
	// cmdWebhookOps changes webhook endpoints and their outbox
	// (state.WebhookOp): ids, secrets, attempt results and the next
	// attempt's time decided by the leader.
	cmdWebhookOps commandType = 12
	// cmdRetireTasks drops finished tasks the leader has archived, with
	// their request keys and events (state.RetireTasks).
	cmdRetireTasks commandType = 13
	// cmdCreateBatch replaces cmdCreateSeeds for new entries: the same
	// seeds in binary (package wire), versioned, with each task's options
	// as the validated JSON the leader received. cmdCreateSeeds still
	// applies in old logs.
	cmdCreateBatch commandType = 14
	// cmdAccessOps makes projects and their API keys and revokes keys
	// (state.AccessOp). Written only once every voter applies it.
	cmdAccessOps commandType = 15
)

func (c commandType) String() string {
	switch c {
	case cmdCreateTasks:
		return "create_tasks"
	case cmdCancelTask:
		return "cancel_task"
	case cmdUpsertServer:
		return "upsert_server"
	case cmdExpireRequests:
		return "expire_requests"
	case cmdRegisterNode:
		return "register_node"
	case cmdSetNodeStatus:
		return "set_node_status"
	case cmdStepUpdates:
		return "step_updates"
	case cmdSetMeta:
		return "set_meta"
	case cmdCreateSeeds:
		return "create_seeds"
	case cmdSplitUpdates:
		return "split_updates"
	case cmdPartUpdates:
		return "part_updates"
	case cmdWebhookOps:
		return "webhook_ops"
	case cmdRetireTasks:
		return "retire_tasks"
	case cmdCreateBatch:
		return "create_batch"
	case cmdAccessOps:
		return "access_ops"
	}
	return fmt.Sprintf("command(%d)", c)
}

// Payloads, stamped by the leader before proposing.
type (
	createTasksCmd struct {
		Now      int64                 `json:"now"`
		Requests []state.CreateRequest `json:"requests"`
	}
	createSeedsCmd struct {
		Now      int64               `json:"now"`
		Requests []state.SeedRequest `json:"requests"`
	}
	cancelTaskCmd struct {
		ID  string `json:"id"`
		Now int64  `json:"now"`
		// Request names the request that cancels (entries before it have
		// none): the same request again is answered as it was.
		Request *state.RequestKey `json:"request,omitempty"`
	}
	upsertServerCmd struct {
		Server state.Server `json:"server"`
	}
	webhookOpsCmd struct {
		Ops []state.WebhookOp `json:"ops"`
	}
	accessOpsCmd struct {
		Ops []state.AccessOp `json:"ops"`
	}
	expireRequestsCmd struct {
		// Now expires the request keys older than their time to live; 0
		// (an entry that only trims events) expires none. A node of an
		// earlier version scans them and expires none either.
		Now int64 `json:"now"`
		// EventsBefore, when set, trims the events created before it
		// (epoch ms: now less the leader's retention). A node of a
		// version before events ignores it.
		EventsBefore int64 `json:"events_before,omitempty"`
		// EventsKeep, when set, trims the oldest events beyond that many
		// (the leader's --event-limit). A node of an earlier version
		// ignores it.
		EventsKeep int `json:"events_keep,omitempty"`
	}
	registerNodeCmd struct {
		Node state.Node `json:"node"`
	}
	setNodeStatusCmd struct {
		Name   string           `json:"name"`
		Status state.NodeStatus `json:"status"`
		Now    int64            `json:"now"`
	}
	stepUpdatesCmd struct {
		Updates []state.StepUpdate `json:"updates"`
	}
	retireTasksCmd struct {
		// IDs are the tasks to drop, archived before the entry was
		// proposed; Requests the keys of the requests that created them;
		// Events their events. V is 2 since entries name the events (an
		// entry before names none, and its tasks' events are found by a
		// walk over all of them).
		V   int      `json:"v,omitempty"`
		IDs []string `json:"ids"`
		// By is the node that proposed the entry (as leader): that node
		// counts what it retired as it applies the entry, whether or not
		// it still leads and its proposal's answer arrived. Absent in
		// older entries; older nodes ignore it.
		By       string             `json:"by,omitempty"`
		Requests []state.RequestKey `json:"requests,omitempty"`
		Events   []uint64           `json:"events,omitempty"`
	}
	setMetaCmd struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
)

// encode frames a command: its type byte, then its JSON payload.
func encode(t commandType, payload any) ([]byte, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, data...), nil
}
