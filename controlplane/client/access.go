package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// CreateProject makes a project (an operator's key only) with its weight
// and its cap of running tasks (0: the defaults, 1 and none).
func (c *Client) CreateProject(ctx context.Context, name string, weight, maxConcurrent int) (*api.Project, error) {
	req := api.ProjectRequest{Name: &name}
	if weight != 0 {
		req.Weight = &weight
	}
	if maxConcurrent != 0 {
		req.MaxConcurrentTasks = &maxConcurrent
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var p api.Project
	if err := c.do(ctx, http.MethodPost, "/projects", body, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Projects lists the projects the key sees.
func (c *Client) Projects(ctx context.Context) (*api.List[api.Project], error) {
	var l api.List[api.Project]
	if err := c.do(ctx, http.MethodGet, "/projects", nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// CreateKey makes an API key; the answer holds its secret, shown only
// this once.
func (c *Client) CreateKey(ctx context.Context, req api.KeyRequest) (*api.Key, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var k api.Key
	if err := c.do(ctx, http.MethodPost, "/keys", body, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Keys lists the keys the key sees: one project's when project is set.
func (c *Client) Keys(ctx context.Context, project string) (*api.List[api.Key], error) {
	path := "/keys"
	if project != "" {
		path += "?project=" + url.QueryEscape(project)
	}
	var l api.List[api.Key]
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// RevokeKey revokes key id: every server refuses it from then on.
func (c *Client) RevokeKey(ctx context.Context, id string) (*api.Key, error) {
	var k api.Key
	if err := c.do(ctx, http.MethodDelete, "/keys/"+url.PathEscape(id), nil, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}
