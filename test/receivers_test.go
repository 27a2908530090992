package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// TestREADMEReceivers runs the webhook receivers of README.md as written
// (the JavaScript one with npm's standardwebhooks, the Python one on the
// standard library alone) against `ittybit dev`: each prints the events
// delivered to it, and refuses a request whose signature is wrong.
func TestREADMEReceivers(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(lang, first string) string {
		m := regexp.MustCompile("(?s)```" + lang + "\n(" + regexp.QuoteMeta(first) + ".*?)```").FindSubmatch(readme)
		if m == nil {
			t.Fatalf("README.md has no %s block starting %q", lang, first)
		}
		return string(m[1])
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run make deps")
	}
	modules, _ := filepath.Abs(filepath.Join("npm", "node_modules"))
	receivers := []struct {
		name, code, listen string
		cmd                func(file string) *exec.Cmd
	}{
		{"receiver.js", block("js", "// node receiver.js"), ".listen(8000)", func(f string) *exec.Cmd { return exec.Command(node, f) }},
		{"receiver.py", block("python", "# python3 receiver.py"), `HTTPServer(("", 8000)`, func(f string) *exec.Cmd { return exec.Command("python3", "-u", f) }},
	}

	dev := mustDev(t)
	mustReady(t, dev)
	users := client.New(dev.URL(), testAPIKey)
	ctx := context.Background()
	dir := t.TempDir()
	for _, r := range receivers {
		t.Run(r.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			if !strings.Contains(r.code, r.listen) {
				t.Fatalf("the README's %s does not listen with %s", r.name, r.listen)
			}
			file := filepath.Join(dir, r.name)
			code := strings.Replace(r.code, "8000", fmt.Sprint(port), 1)
			if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
				t.Fatal(err)
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/hook", port)
			wh, err := users.CreateWebhook(ctx, api.WebhookRequest{URL: &url, Events: []string{"task.created"}})
			if err != nil {
				t.Fatal(err)
			}
			cmd := r.cmd(file)
			cmd.Env = append(os.Environ(), "ITTYBIT_WEBHOOK_SECRET="+wh.Secret, "NODE_PATH="+modules)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, _ := cmd.StdoutPipe()
			setDeathSignal(cmd)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				if t.Failed() {
					t.Logf("%s's stderr:\n%s", r.name, stderr.String())
				}
			})
			var mu sync.Mutex
			var printed []string
			go func() {
				lines := bufio.NewScanner(out)
				for lines.Scan() {
					mu.Lock()
					printed = append(printed, lines.Text())
					mu.Unlock()
				}
			}()
			post := func(sig string) int {
				req, _ := http.NewRequest("POST", url, strings.NewReader(`{"id":"evt_0","type":"task.created"}`))
				req.Header.Set("webhook-id", "evt_0")
				req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
				req.Header.Set("webhook-signature", sig)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			// A forged request is refused (once the receiver listens).
			wait.Until(t, r.name+" listening", 20*time.Second, func() bool { return post("v1,AAAA") != 0 })
			if code := post("v1,bm90IGEgc2lnbmF0dXJl"); code != 400 {
				t.Errorf("a forged request: %d, want 400", code)
			}

			// A task's creation and a test message, after a rotation (the
			// header then holds two signatures; the receiver knows the old
			// secret only), are printed.
			_, err = users.Create(ctx, api.CreateTaskRequest{Kind: "image", Input: "https://example.com/" + r.name + ".jpg"}, client.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := users.RotateWebhook(ctx, wh.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := users.TestWebhook(ctx, wh.ID); err != nil {
				t.Fatal(err)
			}
			wait.Until(t, r.name+" printing both", 20*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				var created, test bool
				for _, l := range printed {
					created = created || strings.HasPrefix(l, "task.created evt_")
					test = test || strings.HasPrefix(l, "webhook.test msg_")
				}
				return created && test
			})
		})
	}
}
