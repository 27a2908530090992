package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/client"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
	"github.com/ittybit-oss/ittybit/internal/wait"
)

// artifactsDir is where browser tests leave their screenshots: the
// directory $ITTYBIT_TEST_ARTIFACTS names, else test/artifacts.
func artifactsDir(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("ITTYBIT_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// consoleBrowser is a Chromium driven through chromedp, with what it
// requested and any dialog a page opened.
type consoleBrowser struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	dialogs  []string
}

func newConsoleBrowser(t *testing.T) *consoleBrowser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromiumOptions(t, chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	b := &consoleBrowser{ctx: ctx}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dialogs := make(chan struct{}, 16)
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		case *cdppage.EventJavascriptDialogOpening:
			b.mu.Lock()
			b.dialogs = append(b.dialogs, e.Message)
			b.mu.Unlock()
			select {
			case dialogs <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { // a dialog would hold the page: dismiss it (the test fails on it anyway)
		for {
			select {
			case <-ctx.Done():
				return
			case <-dialogs:
				_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: false})
			}
		}
	}()
	return b
}

func (b *consoleBrowser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, b *consoleBrowser, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// js evaluates a JavaScript expression in the page (awaiting a promise).
func js[T any](t *testing.T, b *consoleBrowser, expr string) T {
	t.Helper()
	return get(t, b, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func (b *consoleBrowser) text(t *testing.T, sel string) string {
	t.Helper()
	return get(t, b, "the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// until polls a JavaScript condition until it holds.
func (b *consoleBrowser) until(t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	wait.Until(t, what, timeout, func() bool {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		return err == nil && ok
	})
}

func (b *consoleBrowser) screenshot(t *testing.T, path string) {
	t.Helper()
	png := get(t, b, "screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsole drives the web console in Chromium against ittybit dev as a
// user would: sign in; submit the seed's video example through the form
// and watch it complete on the list without a reload; open it and play
// the result; see an invalid option's error beside its field; cancel a
// long task; and checks that user-supplied text stays text, that a
// cross-site write is refused, that the key never reaches the page, its
// cookie or a URL, that the pages fit 360 px and 1920 px, and that axe-core
// finds no serious accessibility violation. Screenshots of each page are
// left under test/artifacts/console (and, with ITTYBIT_UPDATE_SCREENSHOTS=1,
// the README's under docs/).
func TestConsole(t *testing.T) {
	t.Parallel()
	axe, err := os.ReadFile(filepath.Join("npm", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatal("axe-core is not installed: run make deps (npm ci --prefix test/npm)")
	}
	shots := artifactsDir(t, "console")

	// A file server for inputs: the clip, and one that never finishes
	// answering (a task that runs until it is cancelled).
	clip, err := os.ReadFile(clips.Path(t, encoderstest.SmallHD))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload.mov":
			http.ServeContent(w, r, "upload.mov", time.Time{}, strings.NewReader(string(clip)))
		case "/slow.mov":
			w.Header().Set("Content-Length", "100000000")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() { close(release); files.Close() })

	dev := mustDev(t)
	mustReady(t, dev)
	base := dev.URL()
	users := client.New(base, testAPIKey)
	b := newConsoleBrowser(t)

	// Without a session, a page sends the browser to sign-in.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/ui/tasks/task_x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/signin?next=") {
		t.Errorf("a page without a session: %d, Location %q; want 303 to /ui/signin", resp.StatusCode, loc)
	}
	if resp, err = http.Get(base + "/ui/signin"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("the sign-in page's Content-Security-Policy %q: want script-src 'self', frame-ancestors 'none' and no unsafe-inline", csp)
	}

	// Sign in.
	b.do(t, "open the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`#api_key`)))
	where := get(t, b, "location", chromedp.Location())
	if !strings.Contains(where, "/ui/signin") {
		t.Errorf("the console without a session is at %s, want the sign-in page", where)
	}
	b.screenshot(t, filepath.Join(shots, "signin.png"))
	label := b.text(t, `label[for="api_key"]`)
	b.do(t, "a wrong key", chromedp.SendKeys(chromedp.CSS(`#api_key`), "not-the-key"), chromedp.Submit(chromedp.CSS(`#api_key`)),
		chromedp.WaitVisible(chromedp.CSS(`#signin-error`)))
	if label != "API key" {
		t.Errorf("the key's label is %q, want API key", label)
	}
	b.do(t, "sign in", chromedp.SetValue(chromedp.CSS(`#api_key`), testAPIKey), chromedp.Click(chromedp.Search(`//button[normalize-space()="Sign in"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table`)))
	where = get(t, b, "location", chromedp.Location())
	if !strings.HasSuffix(where, "/ui/") {
		t.Errorf("after signing in the browser is at %s, want /ui/", where)
	}
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "ittybit_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || strings.Contains(session.Value, testAPIKey) {
		t.Fatalf("the session cookie: %+v; want HttpOnly, SameSite=Strict, without the key", session)
	}

	// The seed's video example, through the form.
	b.do(t, "the new-task form", chromedp.Click(chromedp.CSS(`a[data-nav="new"]`)), chromedp.WaitVisible(chromedp.CSS(`#opt-input`)))
	js[chromedp.Void](t, b, `window.__sameDocument = true; undefined`)
	b.do(t, "fill the form",
		chromedp.SetValue(chromedp.CSS(`#opt-kind`), "video"),
		chromedp.SendKeys(chromedp.CSS(`#opt-input`), files.URL+"/upload.mov"),
		chromedp.SetValue(chromedp.CSS(`#opt-format`), "mp4"),
		chromedp.SendKeys(chromedp.CSS(`#opt-width`), "1280"),
		chromedp.SendKeys(chromedp.CSS(`#opt-height`), "720"),
		chromedp.SetValue(chromedp.CSS(`#opt-quality`), "high"))
	// A select set by script says so, as a user's choice would.
	js[chromedp.Void](t, b, `for (const id of ['opt-format', 'opt-quality']) document.getElementById(id).dispatchEvent(new Event('change')); undefined`)
	curl := b.text(t, `pre[aria-label="the same request with curl"]`)
	cli := b.text(t, `pre[aria-label="the same task with the CLI"]`)
	for _, want := range []string{`"width":1280`, `"height":720`, `"quality":"high"`, `"format":"mp4"`, "Authorization: Bearer $ITTYBIT_API_KEY"} {
		if !strings.Contains(curl, want) {
			t.Errorf("the curl command lacks %s:\n%s", want, curl)
		}
	}
	if !strings.Contains(cli, "ittybit video --cloud -i") || !strings.Contains(cli, "--width '1280'") {
		t.Errorf("the CLI command: %s", cli)
	}
	b.screenshot(t, filepath.Join(shots, "new.png"))
	b.do(t, "submit", chromedp.Click(chromedp.Search(`//button[normalize-space()="Create task"]`)), chromedp.WaitVisible(chromedp.CSS(`h1 .mono`)))
	taskID := b.text(t, `h1 .mono`)
	if !strings.HasPrefix(taskID, "task_") {
		t.Fatalf("the task page names %q", taskID)
	}

	// The list follows it to completed without a reload.
	b.do(t, "the tasks list", chromedp.Click(chromedp.CSS(`a[data-nav="tasks"]`)), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-task=%q]`, taskID))))
	b.until(t, "the row completed", fmt.Sprintf(`document.querySelector('tr[data-task=%q] .status')?.textContent === 'completed'`, taskID), 2*time.Minute)
	if !js[bool](t, b, `window.__sameDocument === true`) {
		t.Error("the page was reloaded on the way (its window lost a mark)")
	}
	b.screenshot(t, filepath.Join(shots, "tasks.png"))

	// Open it and play the result.
	b.do(t, "open the task", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-task=%q] a`, taskID))), chromedp.WaitVisible(chromedp.CSS(`.preview video`)))
	b.until(t, "the video decoded frames", `(() => { const v = document.querySelector('.preview video'); v.muted = true; v.play().catch(() => {}); return v.getVideoPlaybackQuality().totalVideoFrames > 0; })()`, time.Minute)
	if width := js[int](t, b, `document.querySelector('.preview video').videoWidth`); width != 1280 {
		t.Errorf("the result plays %d wide, want 1280", width)
	}
	b.screenshot(t, filepath.Join(shots, "task.png"))

	// An invalid option: the error beside its field.
	b.do(t, "the form again", chromedp.Click(chromedp.CSS(`a[data-nav="new"]`)), chromedp.WaitVisible(chromedp.CSS(`#opt-input`)),
		chromedp.SendKeys(chromedp.CSS(`#opt-input`), files.URL+"/upload.mov"), chromedp.SendKeys(chromedp.CSS(`#opt-width`), "wide"),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Create task"]`)))
	b.until(t, "the width's error", `document.getElementById('err-width').textContent.includes('width')`, 20*time.Second)
	if invalid := get(t, b, "the invalid field", chromedp.AttributeValue(chromedp.CSS(`#opt-width`), "aria-invalid")); invalid.Value != "true" {
		t.Errorf("the width field's aria-invalid is %q", invalid.Value)
	}
	b.screenshot(t, filepath.Join(shots, "invalid.png"))

	// Cancel a long task.
	long, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: "video", Input: files.URL + "/slow.mov"}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.do(t, "the long task", chromedp.Navigate(base+"/ui/tasks/"+long.ID), chromedp.WaitVisible(chromedp.Search(`//button[normalize-space()="Cancel"]`)),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Cancel"]`)))
	b.until(t, "cancelled", `document.querySelector('.actions .status')?.textContent === 'cancelled'`, 30*time.Second)
	if got, err := users.Get(context.Background(), long.ID); err != nil || got.Status != api.TaskCancelled {
		t.Errorf("the long task after Cancel: %+v, %v", got, err)
	}
	b.screenshot(t, filepath.Join(shots, "cancelled.png"))

	// Markup in metadata stays text.
	hostile := `<img src=x onerror=alert(1)>`
	meta, _ := json.Marshal(map[string]string{"title": hostile})
	xss, err := users.Create(context.Background(), api.CreateTaskRequest{Kind: "image", Input: files.URL + "/missing.png", Metadata: meta}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.do(t, "the hostile task", chromedp.Navigate(base+"/ui/tasks/"+xss.ID), chromedp.WaitVisible(chromedp.CSS(`dl.facts`)))
	if !js[bool](t, b, fmt.Sprintf(`document.querySelector('dl.facts').textContent.includes(%q) && !document.querySelector('main img')`, hostile)) {
		t.Error("the metadata's markup is not shown as text")
	}
	b.do(t, "the list with it", chromedp.Click(chromedp.CSS(`a[data-nav="tasks"]`)), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-task=%q]`, xss.ID))), chromedp.Sleep(500*time.Millisecond))
	b.mu.Lock()
	for _, u := range b.requests {
		if strings.HasSuffix(u, "/x") {
			t.Errorf("the page requested %s", u)
		}
		if strings.Contains(u, testAPIKey) {
			t.Errorf("a URL holds the API key: %s", u)
		}
	}
	if len(b.dialogs) > 0 {
		t.Errorf("dialogs opened: %q", b.dialogs)
	}
	b.mu.Unlock()

	// The key is nowhere in the page, and nothing is in localStorage.
	source := get(t, b, "the page source", chromedp.OuterHTML(chromedp.CSS(`html`)))
	stored := js[int](t, b, `localStorage.length + sessionStorage.length`)
	if strings.Contains(source, testAPIKey) || stored != 0 {
		t.Errorf("the key in the page: %v; web storage entries: %d", strings.Contains(source, testAPIKey), stored)
	}

	// A cross-site write with the session, without its CSRF token, or from
	// another origin, is refused; with both it goes.
	post := func(headers map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/tasks/"+xss.ID+"/cancel", nil)
		req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, string(e.Kind)
	}
	csrf := js[string](t, b, `document.querySelector('meta[name="csrf-token"]').content`)
	if code, kind := post(map[string]string{"Origin": "https://evil.example"}); code != 403 || kind != "csrf_failed" {
		t.Errorf("a cross-site POST without the token: %d %s, want 403 csrf_failed", code, kind)
	}
	if code, kind := post(map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": csrf}); code != 403 || kind != "csrf_failed" {
		t.Errorf("a cross-site POST with the token: %d %s, want 403 csrf_failed", code, kind)
	}
	if code, _ := post(map[string]string{"X-CSRF-Token": csrf}); code != 200 && code != 409 {
		t.Errorf("a same-site POST with the token: %d, want it to pass", code)
	}

	// Every page at 360 px and 1920 px: nothing wider than the window,
	// and no serious accessibility violation.
	pages := map[string]string{"tasks": "/ui/", "task": "/ui/tasks/" + taskID, "new": "/ui/new", "fleet": "/ui/fleet"}
	for _, w := range []int64{360, 1920} {
		for name, path := range pages {
			b.do(t, "resize", chromedp.EmulateViewport(w, 900), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)), chromedp.Sleep(300*time.Millisecond))
			if overflow := js[int](t, b, `document.documentElement.scrollWidth - window.innerWidth`); overflow > 0 {
				t.Errorf("%s at %d px is %d px too wide", name, w, overflow)
			}
			violations := js[[]struct {
				ID     string `json:"id"`
				Impact string `json:"impact"`
				Help   string `json:"help"`
				Nodes  int    `json:"nodes"`
			}](t, b, string(axe)+`;axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length})))`)
			for _, v := range violations {
				t.Errorf("axe on %s at %d px: %s (%s, %d nodes): %s", name, w, v.ID, v.Impact, v.Nodes, v.Help)
			}
			b.screenshot(t, filepath.Join(shots, fmt.Sprintf("%s-%d.png", name, w)))
		}
	}

	// The README's screenshots, when asked to remake them.
	if os.Getenv("ITTYBIT_UPDATE_SCREENSHOTS") == "1" {
		for _, name := range []string{"tasks", "fleet"} {
			b.do(t, "resize", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+pages[name]), chromedp.WaitVisible(chromedp.CSS(`main h1`)), chromedp.Sleep(2500*time.Millisecond))
			b.screenshot(t, filepath.Join("..", "docs", "console-"+name+".png"))
		}
	}
}
