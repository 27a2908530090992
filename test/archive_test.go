package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestArchiveFailure: with a retention of seconds and an archive that
// cannot be written (a file stands where its folder goes, which stops
// root too), no finished task retires: each stays readable as it was, the
// metrics say so and the shipped alert's expression fires in a real
// Prometheus. Once the archive is writable again every task retires, and
// reads back from the archive as it ended.
func TestArchiveFailure(t *testing.T) {
	prom := mustPrometheusTool(t, "prometheus")
	mustPrometheusTool(t, "promtool")
	dev := mustDev(t, "--task-retention", "2s")
	mustReady(t, dev)
	blocker := filepath.Join(dev.DataDir(), "files", "archive")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("not a folder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promURL := mustPrometheus(t, prom, dev.HTTPAddr)
	metricsURL := dev.URL() + "/metrics"

	ctx := context.Background()
	users := client.New(dev.URL(), testAPIKey)
	const tasks = 12
	ended := map[string]api.TaskStatus{}
	for i := range tasks {
		task, err := users.Create(ctx, api.CreateTaskRequest{Kind: "image", Input: "http://127.0.0.1:9/still-" + string(rune('a'+i)) + ".png"}, client.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Cancelled, or already failed: either way it has ended.
		got, err := users.Cancel(ctx, task.ID)
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.Kind == "task_finished" {
			got, err = users.Get(ctx, task.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
		ended[task.ID] = got.Status
	}
	wait.For(t, "the archive write to fail", time.Minute, func() error {
		m := scrape(t, metricsURL)
		if m.value(t, "ittybit_archive_failing") != 1 || m.value(t, "ittybit_archive_write_failures_total") < 2 {
			return errors.New("not failing yet")
		}
		return nil
	})
	// Well past the retention, nothing has retired: every task reads as it
	// ended, from memory.
	for id, status := range ended {
		got, err := users.Get(ctx, id)
		if err != nil || got.Status != status || got.Archived {
			t.Errorf("task %s while the archive fails: %+v %v", id, got, err)
		}
	}
	m := scrape(t, metricsURL)
	if got := m.value(t, "ittybit_tasks_retired_total"); got != 0 {
		t.Errorf("%v tasks retired with no archive", got)
	}
	wait.For(t, "ittybit_tasks_retire_due to count every task", time.Minute, func() error {
		if got := scrape(t, metricsURL).value(t, "ittybit_tasks_retire_due"); got != tasks {
			return fmt.Errorf("%v, want %d", got, tasks)
		}
		return nil
	})
	expr := ""
	for _, r := range ruleExprs(t) {
		if r.name == "IttybitArchiveFailing" {
			expr = r.expr
		}
	}
	if expr == "" {
		t.Fatal("no IttybitArchiveFailing in " + alertRules)
	}
	wait.For(t, "the alert's expression to fire in Prometheus", time.Minute, func() error {
		res, err := promQuery(promURL, expr)
		if err != nil {
			return err
		}
		if len(res) != 1 {
			return errors.New("no result yet")
		}
		return nil
	})
	if !dev.logged("archive write failed") {
		t.Error(`the log does not say "archive write failed"`)
	}

	// Writable again: everything retires, nothing lost.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "every task to retire", 2*time.Minute, func() error {
		if got := scrape(t, metricsURL).value(t, "ittybit_tasks_retired_total"); got != tasks {
			return errors.New("not yet")
		}
		return nil
	})
	for id, status := range ended {
		got, err := users.Get(ctx, id)
		if err != nil || got.Status != status || !got.Archived {
			t.Errorf("task %s from the archive: %+v %v", id, got, err)
		}
	}
	wait.For(t, "the metrics to say nothing fails and nothing is due", time.Minute, func() error {
		if m := scrape(t, metricsURL); m.value(t, "ittybit_archive_failing") != 0 || m.value(t, "ittybit_tasks_retire_due") != 0 {
			return errors.New("still failing, or tasks still due")
		}
		return nil
	})
	list, err := users.List(ctx, client.ListOptions{Limit: 100})
	if err != nil || len(list.Data) != 0 || list.Archive == "" {
		t.Errorf("the live list: %+v %v", list, err)
	}
	wait.For(t, "the alert's expression to clear", time.Minute, func() error {
		res, err := promQuery(promURL, expr)
		if err != nil {
			return err
		}
		if len(res) != 0 {
			return errors.New("still firing")
		}
		return nil
	})
}
