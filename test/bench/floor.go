package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startFloor builds test/bench/floornode (the least a task API on
// net/http and hashicorp/raft does for a create) and starts a cluster of
// three of them: a bootstraps and leads, b and c join and forward their
// creates to it in batches. It returns the nodes and the leader.
func startFloor(ctx context.Context, e *env) ([]*proc, *proc, error) {
	bin := filepath.Join(e.dir, "floornode")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/bench/floornode")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, nil, fmt.Errorf("go build floornode: %w", err)
	}
	var nodes []*proc
	fail := func(err error) ([]*proc, *proc, error) {
		stopAll(nodes)
		return nil, nil, err
	}
	for i, name := range []string{"a", "b", "c"} {
		dir := filepath.Join(e.dir, "floor-"+name)
		if err := os.RemoveAll(dir); err != nil {
			return fail(err)
		}
		args := []string{"-id", name, "-dir", dir, "-pprof"}
		if i == 0 {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-leader", nodes[0].url)
		}
		p, err := e.startProgram(ctx, bin, "floor-"+name, nil, nil, args...)
		if err != nil {
			return fail(err)
		}
		nodes = append(nodes, p)
		if i == 0 {
			if err := p.waitReady(ctx); err != nil {
				return fail(err)
			}
			continue
		}
		raftAddr, _ := logField(p.log, "server started", "raft")
		q := url.Values{"id": {name}, "addr": {raftAddr}}
		resp, err := http.Post(nodes[0].url+"/join?"+q.Encode(), "", nil)
		if err != nil {
			return fail(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fail(fmt.Errorf("floor node %s did not join: %s", name, resp.Status))
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(nodes[0].url + "/leader")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nodes, nodes[0], nil
			}
		}
	}
	return fail(fmt.Errorf("floor node a, which b and c forward to, does not lead"))
}
