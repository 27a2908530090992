package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinFleet pins this process (the simulated fleet) and the servers the
// fleet benchmark starts to separate CPUs, per spec "FLEET:SERVERS" (CPU
// lists as taskset takes them: "0", "0-1", "0,2"), so that the fleet's own
// CPU cannot slow the servers. The returned function undoes it. An empty
// spec pins nothing.
func pinFleet(spec string) (restore func(), err error) {
	if spec == "" {
		return func() {}, nil
	}
	fleetCPUs, serverCPUs, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("-fleet-pin %q: want FLEET:SERVERS, such as 0:1", spec)
	}
	set, err := cpuSet(fleetCPUs)
	if err != nil {
		return nil, err
	}
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	if err := setAffinity(&set); err != nil {
		return nil, err
	}
	serverWrap = []string{"taskset", "-c", serverCPUs}
	return func() {
		serverWrap = nil
		_ = setAffinity(&old)
	}, nil
}

// serverWrap, when set, runs the servers of the fleet benchmark under it.
var serverWrap []string

// setAffinity sets the CPU set of every thread of this process (threads
// made later inherit it from the thread that makes them).
func setAffinity(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	return nil
}

// cpuSet parses a CPU list: "0", "0-3", "0,2".
func cpuSet(list string) (unix.CPUSet, error) {
	var set unix.CPUSet
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return set, fmt.Errorf("CPU list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return set, fmt.Errorf("CPU list %q: %w", list, err)
			}
		}
		for cpu := a; cpu <= b; cpu++ {
			set.Set(cpu)
		}
	}
	return set, nil
}

// pinNote says how a run was pinned.
func pinNote(spec string) string {
	fleet, servers, _ := strings.Cut(spec, ":")
	return fmt.Sprintf("the simulated fleet (the benchmark process) ran on CPU %s and the three servers on CPU %s (`taskset -c %s`)", fleet, servers, servers)
}
