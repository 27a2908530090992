package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// The agent routes; the client's key must be a node token.

// RegisterNode registers an agent and its capabilities.
func (c *Client) RegisterNode(ctx context.Context, reg api.NodeRegistration) (*api.NodeRegistered, error) {
	body, _ := json.Marshal(reg)
	var out api.NodeRegistered
	return &out, c.do(ctx, http.MethodPost, "/internal/nodes", body, nil, &out)
}

// Heartbeat reports that the agent lives and how its steps are doing.
func (c *Client) Heartbeat(ctx context.Context, name string, hb api.Heartbeat) (*api.HeartbeatReply, error) {
	body, _ := json.Marshal(hb)
	var out api.HeartbeatReply
	return &out, c.do(ctx, http.MethodPost, "/internal/nodes/"+url.PathEscape(name)+"/heartbeat", body, nil, &out)
}

// Assignments waits up to wait for steps leased to the agent. rcv says
// what the agent has received so far, so that the leader sends again what
// was lost on the way.
func (c *Client) Assignments(ctx context.Context, name string, wait time.Duration, rcv api.Received) (api.Assignments, error) {
	q := url.Values{"wait": {wait.String()}}
	if rcv.Epoch != "" {
		q.Set("epoch", rcv.Epoch)
		q.Set("seq", strconv.FormatUint(rcv.Seq, 10))
	}
	var out api.Assignments
	err := c.do(ctx, http.MethodGet, "/internal/nodes/"+url.PathEscape(name)+"/assignments?"+q.Encode(), nil, nil, &out)
	return out, err
}

// ReportStep reports a step's outcome for an attempt. The answer carries
// the task's next step when rep.Continue asked for it and the leader gave
// it to this agent.
func (c *Client) ReportStep(ctx context.Context, stepID string, rep api.StepReport) (api.ReportReply, error) {
	body, _ := json.Marshal(rep)
	var out api.ReportReply
	err := c.do(ctx, http.MethodPost, "/internal/steps/"+url.PathEscape(stepID)+"/report", body, nil, &out)
	return out, err
}

// DrainNode stops the leader giving the agent more work.
func (c *Client) DrainNode(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/internal/nodes/"+url.PathEscape(name)+"/drain", []byte("{}"), nil, nil)
}

// Nodes lists the agents the leader knows.
func (c *Client) Nodes(ctx context.Context) ([]api.NodeInfo, error) {
	var out api.List[api.NodeInfo]
	err := c.do(ctx, http.MethodGet, "/internal/nodes", nil, nil, &out)
	return out.Data, err
}
