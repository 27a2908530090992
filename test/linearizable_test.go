package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// The robustness check (issue: a faster replicated log, proven
// linearizable): 16 clients drive the task API over the three servers of a
// cluster while a schedule drawn from a seed injects faults, every
// operation's invocation and response is recorded, and the history is
// checked for linearizability with porcupine against a model of the API.
//
// The model keeps one object per task: a keyed create's Idempotency-Key,
// or an unkeyed task's id. Its state is the task's id (none yet, or
// created under an id not yet seen) and whether it was cancelled:
//   - a create returns the key's one task, the same id every time;
//   - a created task is seen by every later read, through any node, as
//     queued until cancelled, then as cancelled (no agent runs here);
//   - cancel is final: after one, a cancel answers task_finished.
//
// An operation whose outcome the client cannot know (a timeout, a reset,
// a 503 after the request may have been committed) is kept, with no
// response: porcupine may place it anywhere after its call, applied. A
// read that failed is dropped: it changed nothing.
//
// Lists (GET /tasks, the newest page) span every object, so they are
// checked beside porcupine (linCheckLists): a page must be a consistent
// cut of the history, which is what a linearizable list returns.

// linInput is one operation of the history.
type linInput struct {
	Op  string // "create", "get" or "cancel"
	Key string // the object: "k:" + Idempotency-Key, or "t:" + task id
	ID  string // the task (get, cancel)
}

// linOutput is what the operation answered.
type linOutput struct {
	Unknown bool   // no answer to go by
	ID      string // create: the task's id
	Found   bool   // get
	Status  string // get: the task's status; cancel: "cancelled", "finished" or "missing"
}

// linState is one task as the model knows it.
type linState struct {
	ID        string // "" before its create; "?" created, its id not yet seen
	Cancelled bool
}

// linModel is the task API as a porcupine model.
var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(linInput).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		// matches tells whether the task is in.ID, taking a task created
		// under an unseen id to be that one (a key has one task).
		matches := func() (bool, linState) {
			switch s.ID {
			case in.ID:
				return true, s
			case "?":
				return true, linState{ID: in.ID, Cancelled: s.Cancelled}
			}
			return false, s
		}
		switch in.Op {
		case "create":
			switch {
			case out.Unknown && s.ID == "":
				return true, linState{ID: "?"}
			case out.Unknown:
				return true, s
			case s.ID == "" || s.ID == "?":
				return true, linState{ID: out.ID, Cancelled: s.Cancelled}
			}
			return s.ID == out.ID, s
		case "get":
			if out.Unknown {
				return true, s
			}
			ok, next := matches()
			if !out.Found {
				return s.ID == "", s
			}
			want := string(api.TaskQueued)
			if next.Cancelled {
				want = string(api.TaskCancelled)
			}
			return ok && out.Status == want, next
		case "cancel":
			ok, next := matches()
			switch {
			case out.Unknown && ok:
				next.Cancelled = true
				return true, next
			case out.Unknown:
				return true, s
			case out.Status == "missing":
				return s.ID == "", s
			case out.Status == "finished":
				return ok && next.Cancelled, next
			}
			next.Cancelled = true
			return ok && !s.Cancelled, next
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := "?"
		switch {
		case out.Unknown:
		case in.Op == "create":
			res = out.ID
		case in.Op == "get" && !out.Found:
			res = "404"
		default:
			res = out.Status
		}
		return fmt.Sprintf("%s(%s) → %s", in.Op, in.ID, res)
	},
	DescribeState: func(state any) string {
		s := state.(linState)
		return fmt.Sprintf("%s cancelled=%v", s.ID, s.Cancelled)
	},
}

// linSchedules is how many schedules TestLinearizable runs, and for how
// long each: ITTYBIT_LINEARIZABLE_SEED replays one; make test-long sets
// ITTYBIT_LINEARIZABLE_SCHEDULES (30).
func linSchedules() (seeds []uint64, load time.Duration) {
	if v, err := strconv.ParseUint(os.Getenv("ITTYBIT_LINEARIZABLE_SEED"), 10, 64); err == nil {
		return []uint64{v}, 12 * time.Second
	}
	n := 3
	if v, err := strconv.Atoi(os.Getenv("ITTYBIT_LINEARIZABLE_SCHEDULES")); err == nil && v > 0 {
		n = v
	}
	base := uint64(time.Now().UnixNano())
	for i := range n {
		seeds = append(seeds, base+uint64(i))
	}
	return seeds, 12 * time.Second
}

// TestLinearizable runs the robustness check: each schedule starts a
// fresh cluster, applies its faults under load, heals, reads every task
// it learnt of through every node, and checks the whole history.
func TestLinearizable(t *testing.T) {
	t.Parallel()
	seeds, load := linSchedules()
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runSchedule(t, seed, load) })
	}
}

// linRecorder collects the history.
type linRecorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	ids   []string          // every task id answered
	keyOf map[string]string // task id → its object
	lists []linList
}

// linList is one answered GET /tasks?limit=linPage: the newest tasks,
// newest first, with their statuses.
type linList struct {
	client    int
	call, ret int64
	ids       []string
	status    map[string]string
}

// linPage is the size of the pages lists read.
const linPage = 50

func (r *linRecorder) now() int64 { return int64(time.Since(r.start)) }

// add records an operation called at call; an unknown outcome returns at
// infinity.
func (r *linRecorder) add(client int, in linInput, out linOutput, call int64) {
	ret := r.now()
	if out.Unknown {
		ret = math.MaxInt64
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	if in.Op == "create" && !out.Unknown {
		if _, seen := r.keyOf[out.ID]; !seen {
			r.ids = append(r.ids, out.ID)
			r.keyOf[out.ID] = in.Key
		}
	}
}

// pick returns a task answered so far, and its object ("" when none).
func (r *linRecorder) pick(rng *rand.Rand) (id, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return "", ""
	}
	// Mostly recent tasks, where the races are.
	n := len(r.ids)
	i := n - 1 - min(n-1, int(rng.ExpFloat64()*8))
	return r.ids[i], r.keyOf[r.ids[i]]
}

func runSchedule(t *testing.T, seed uint64, load time.Duration) {
	t.Logf("seed %d (replay with ITTYBIT_LINEARIZABLE_SEED=%d)", seed, seed)
	split, nodes := netsplitCluster(t)

	// The clients' addresses, read once: a restart keeps them, and the
	// fault goroutine rewrites the procs' fields as it restarts them.
	urls := []string{nodes[0].URL(), nodes[1].URL(), nodes[2].URL()}
	rec := &linRecorder{start: time.Now(), keyOf: map[string]string{}}
	client := &http.Client{Timeout: 4 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for cl := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(cl)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				linOp(rec, client, urls[rng.IntN(3)], cl, rng, seed)
			}
		})
	}
	faults := linFaults(t, seed, nodes, split, load)
	close(stop)
	wg.Wait()

	// Heal: every node up and caught up, then every task read through
	// every node.
	split.heal()
	for _, p := range nodes {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		} else {
			p.mustStart(t)
		}
	}
	mustReady(t, nodes...)
	waitSameState(t, time.Minute, nodes...)
	for _, id := range rec.ids {
		for cl, url := range urls {
			call := rec.now()
			rec.add(16+cl, linInput{Op: "get", Key: rec.keyOf[id], ID: id}, linGet(client, url, id), call)
		}
	}
	t.Logf("faults: %v; %d operations, %d lists, %d tasks", faults, len(rec.ops), len(rec.lists), len(rec.ids))
	if bad := linCheckLists(rec); len(bad) > 0 {
		for i, b := range bad {
			if i < 10 {
				t.Error(b)
			}
		}
		t.Fatalf("%d lists of seed %d are not consistent cuts (replay with ITTYBIT_LINEARIZABLE_SEED=%d)", len(bad), seed, seed)
	}

	res, info := porcupine.CheckOperationsVerbose(linModel, linPrune(rec.ops), time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("ittybit-linearizability-%d.html", seed))
		if err := porcupine.VisualizePath(linModel, info, path); err != nil {
			t.Logf("visualisation: %v", err)
		}
		for _, part := range linModel.Partition(rec.ops) {
			if porcupine.CheckOperations(linModel, part) {
				continue
			}
			sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
			var b strings.Builder
			for _, op := range part {
				ret := "∞"
				if op.Return != math.MaxInt64 {
					ret = time.Duration(op.Return).String()
				}
				fmt.Fprintf(&b, "  client %2d  %12s → %-12s  %s\n", op.ClientId, time.Duration(op.Call), ret, linModel.DescribeOperation(op.Input, op.Output))
			}
			t.Errorf("object %s:\n%s", part[0].Input.(linInput).Key, b.String())
		}
		t.Fatalf("the history of seed %d is not linearizable: see %s (replay with ITTYBIT_LINEARIZABLE_SEED=%d)", seed, path, seed)
	default:
		t.Fatalf("the check of seed %d did not finish in a minute", seed)
	}
}

// linPrune leaves out the operations of unknown outcome that cannot change
// the verdict, so that the check stays fast (each such operation may be
// placed anywhere after its call, and k of them in one object make 2^k
// orders to try):
//   - every create of unknown outcome: nothing a client sees needs it to
//     have happened (a task's id is only ever learnt from a create that
//     answered, which the model may place before any read of it), so it
//     can always be placed last, where it changes nothing;
//   - every cancel of unknown outcome but the earliest called of its
//     object: when some cancel must have happened, the earliest may be
//     placed wherever a later one could, and any other after it changes
//     nothing (cancel is final).
func linPrune(ops []porcupine.Operation) []porcupine.Operation {
	earliest := map[string]int{} // object → index of its earliest unknown cancel
	for i, op := range ops {
		in := op.Input.(linInput)
		if in.Op == "cancel" && op.Output.(linOutput).Unknown {
			if j, ok := earliest[in.Key]; !ok || op.Call < ops[j].Call {
				earliest[in.Key] = i
			}
		}
	}
	var out []porcupine.Operation
	for i, op := range ops {
		in := op.Input.(linInput)
		if op.Output.(linOutput).Unknown {
			if in.Op == "create" || (in.Op == "cancel" && earliest[in.Key] != i) {
				continue
			}
		}
		out = append(out, op)
	}
	return out
}

// linOp makes one random operation through the server at url and records
// it.
func linOp(rec *linRecorder, client *http.Client, url string, cl int, rng *rand.Rand, seed uint64) {
	call := rec.now()
	switch r := rng.IntN(100); {
	case r < 35: // a keyed create: 8 keys a pair of clients share at a time
		key := fmt.Sprintf("lin-%d-%d-%d", seed, cl/2, rng.IntN(8)+8*(int(call/int64(2*time.Second))))
		in := linInput{Op: "create", Key: "k:" + key}
		rec.add(cl, in, linCreate(client, url, key), call)
	case r < 45: // unkeyed: the task is its own object
		out := linCreate(client, url, "")
		key := "t:" + out.ID
		if out.Unknown {
			key = fmt.Sprintf("u:%d-%d", cl, call) // a task no later operation names
		}
		rec.add(cl, linInput{Op: "create", Key: key}, out, call)
	case r < 75:
		if id, key := rec.pick(rng); id != "" {
			out := linGet(client, url, id)
			if !out.Unknown { // a failed read changed nothing
				rec.add(cl, linInput{Op: "get", Key: key, ID: id}, out, call)
			}
		}
	case r < 80:
		if l, ok := linListPage(client, url); ok {
			l.client, l.call, l.ret = cl, call, rec.now()
			rec.mu.Lock()
			rec.lists = append(rec.lists, l)
			rec.mu.Unlock()
		}
	default:
		if id, key := rec.pick(rng); id != "" {
			rec.add(cl, linInput{Op: "cancel", Key: key, ID: id}, linCancel(client, url, id), call)
		}
	}
}

func linDo(client *http.Client, method, url string, body []byte, key string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func linCreate(client *http.Client, url, key string) linOutput {
	input := "https://example.com/lin/" + key + ".mov"
	if key == "" {
		input = "https://example.com/lin/unkeyed.mov"
	}
	code, body, err := linDo(client, "POST", url+"/tasks", []byte(`{"kind":"video","input":"`+input+`"}`), key)
	var task api.Task
	if err != nil || code != http.StatusCreated || json.Unmarshal(body, &task) != nil || task.ID == "" {
		return linOutput{Unknown: true}
	}
	return linOutput{ID: task.ID}
}

func linGet(client *http.Client, url, id string) linOutput {
	code, body, err := linDo(client, "GET", url+"/tasks/"+id, nil, "")
	switch {
	case err != nil:
		return linOutput{Unknown: true}
	case code == http.StatusNotFound:
		return linOutput{}
	case code != http.StatusOK:
		return linOutput{Unknown: true}
	}
	var task api.Task
	if json.Unmarshal(body, &task) != nil {
		return linOutput{Unknown: true}
	}
	return linOutput{Found: true, Status: string(task.Status)}
}

// linListPage reads the newest page of tasks; ok is false when there is
// no answer to go by.
func linListPage(client *http.Client, url string) (linList, bool) {
	code, body, err := linDo(client, "GET", url+"/tasks?limit="+strconv.Itoa(linPage), nil, "")
	var page api.TaskList
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &page) != nil {
		return linList{}, false
	}
	l := linList{status: map[string]string{}}
	for _, t := range page.Data {
		l.ids = append(l.ids, t.ID)
		l.status[t.ID] = string(t.Status)
	}
	return l, true
}

// linCheckLists checks every list against the history of creates and
// cancels: a page holds the newest tasks of one moment between its call
// and its return. With m the oldest id on a full page (every task when
// the page is not full), it fails when
//   - a task answered 201 before the list was called, whose id is m or
//     newer, is missing (a write already seen by its client, not read);
//   - a task on the page was created after a task that is missing,
//     answered before the listed one was asked for (a page with a later
//     write but not an earlier one: no moment had that state);
//   - a task is listed as cancelled with no cancel asked for before the
//     list returned, or as queued though a cancel of it was answered
//     before the list was called.
func linCheckLists(rec *linRecorder) []string {
	type life struct {
		createCall, createAck int64 // first call, first 201 (MaxInt64: none)
		cancelCall, cancelAck int64 // first cancel called, first answered cancelled
	}
	lives := map[string]*life{}
	get := func(id string) *life {
		l := lives[id]
		if l == nil {
			l = &life{createCall: math.MaxInt64, createAck: math.MaxInt64, cancelCall: math.MaxInt64, cancelAck: math.MaxInt64}
			lives[id] = l
		}
		return l
	}
	// A keyed task may have been created by a call whose answer was lost
	// and answered to a later one: its create was asked for at the first
	// call of its key.
	firstCall := map[string]int64{}
	for _, op := range rec.ops {
		if in := op.Input.(linInput); in.Op == "create" {
			if c, ok := firstCall[in.Key]; !ok || op.Call < c {
				firstCall[in.Key] = op.Call
			}
		}
	}
	for _, op := range rec.ops {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		switch {
		case in.Op == "create" && !out.Unknown:
			l := get(out.ID)
			l.createCall, l.createAck = min(l.createCall, firstCall[in.Key]), min(l.createAck, op.Return)
		case in.Op == "cancel":
			l := get(in.ID)
			l.cancelCall = min(l.cancelCall, op.Call)
			if out.Status == "cancelled" {
				l.cancelAck = min(l.cancelAck, op.Return)
			}
		}
	}
	var bad []string
	for _, list := range rec.lists {
		oldest := ""
		if len(list.ids) == linPage {
			oldest = list.ids[len(list.ids)-1]
		}
		// The latest call of a listed task's create: every task answered
		// before it must be there too.
		var latestListed int64 = -1
		for _, id := range list.ids {
			l := lives[id]
			if l == nil {
				continue // its create's answer was lost: nothing to compare
			}
			latestListed = max(latestListed, l.createCall)
			switch st := list.status[id]; {
			case st == string(api.TaskCancelled) && l.cancelCall > list.ret:
				bad = append(bad, fmt.Sprintf("client %d's list (%v → %v) shows %s cancelled; its first cancel was called at %v", list.client, time.Duration(list.call), time.Duration(list.ret), id, time.Duration(l.cancelCall)))
			case st == string(api.TaskQueued) && l.cancelAck < list.call:
				bad = append(bad, fmt.Sprintf("client %d's list (%v → %v) shows %s queued; a cancel of it was answered at %v", list.client, time.Duration(list.call), time.Duration(list.ret), id, time.Duration(l.cancelAck)))
			}
		}
		for id, l := range lives {
			if id < oldest || list.status[id] != "" {
				continue
			}
			switch {
			case l.createAck < list.call:
				bad = append(bad, fmt.Sprintf("client %d's list (%v → %v) misses %s, answered 201 at %v", list.client, time.Duration(list.call), time.Duration(list.ret), id, time.Duration(l.createAck)))
			case l.createAck < latestListed:
				bad = append(bad, fmt.Sprintf("client %d's list (%v → %v) misses %s, answered 201 at %v, before a listed task was asked for at %v", list.client, time.Duration(list.call), time.Duration(list.ret), id, time.Duration(l.createAck), time.Duration(latestListed)))
			}
		}
	}
	return bad
}

func linCancel(client *http.Client, url, id string) linOutput {
	code, body, err := linDo(client, "POST", url+"/tasks/"+id+"/cancel", nil, "")
	switch {
	case err != nil:
		return linOutput{Unknown: true}
	case code == http.StatusOK:
		return linOutput{Status: "cancelled"}
	case code == http.StatusNotFound:
		return linOutput{Status: "missing"}
	case code == http.StatusConflict && bytes.Contains(body, []byte("task_finished")):
		return linOutput{Status: "finished"}
	}
	return linOutput{Unknown: true}
}

// linFaults applies the schedule drawn from seed for load, one fault
// about every 2 s, each undone before the next: the leader or a follower
// SIGKILLed and restarted, the leader SIGSTOPped for longer than the
// election timeout, the leader cut off from the others, or a full
// restart. It returns the faults applied.
func linFaults(t *testing.T, seed uint64, nodes []*proc, split *netsplit, load time.Duration) []string {
	rng := rand.New(rand.NewPCG(seed, math.MaxUint64))
	var done []string
	end := time.Now().Add(load)
	leader := func() *proc {
		for _, p := range nodes {
			if s, err := getState(p); err == nil && s.Leader {
				return p
			}
		}
		return nodes[rng.IntN(3)]
	}
	for time.Now().Before(end) {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		switch f := rng.IntN(5); f {
		case 0, 1:
			p := leader()
			if f == 1 { // a follower
				p = nodes[(slices.Index(nodes, p)+1+rng.IntN(2))%3]
			}
			p.Kill(t)
			done = append(done, "kill "+p.name)
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
			p.mustStart(t)
		case 2:
			p := leader()
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			done = append(done, "stop "+p.name)
			time.Sleep(time.Duration(1500+rng.IntN(1500)) * time.Millisecond)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		case 3:
			p := leader()
			split.cut(p.name)
			done = append(done, "cut "+p.name)
			time.Sleep(time.Duration(1500+rng.IntN(1500)) * time.Millisecond)
			split.heal()
		case 4:
			for _, p := range nodes {
				p.Kill(t)
			}
			done = append(done, "restart all")
			for _, p := range nodes {
				p.mustStart(t)
			}
		}
	}
	return done
}
