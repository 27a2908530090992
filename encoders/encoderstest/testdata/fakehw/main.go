// Command fakehw stands in for ffmpeg and nvidia-smi on a machine with GPUs
// that are not there. Named ffmpeg or nvidia-smi (by its file name), it
// answers from the host scenario folder in $ITTYBIT_FAKEHW:
//
//   - nvidia-smi: prints nvidia-smi.txt (for the usage query, the
//     utilization.encoder one, nvidia-smi-usage.txt), or fails as without a
//     driver;
//   - ffmpeg -encoders / -filters: prints encoders.txt / filters.txt (the
//     scenario's, else the shared ones one folder up);
//   - ffmpeg -init_hw_device vaapi=…: prints vaapi.txt to stderr;
//   - a one-frame test encode (-f lavfi): answers from test-encode.txt, lines
//     "ENCODER ok" or "ENCODER error text";
//   - an encode (-progress) with an encoder listed in encode.txt fails with
//     that line's error text.
//
// Anything else runs the real ffmpeg ($ITTYBIT_FAKEHW_FFMPEG), so software
// encodes and unlisted hardware work as on this machine.
//
// A stalled host: while the file named by $ITTYBIT_FAKEHW_STALLS holds a
// number above 0, each ffmpeg -encoders or -filters takes one off it and
// hangs until it is killed, as a command does on a host whose disk stalls.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := os.Getenv("ITTYBIT_FAKEHW")
	switch filepath.Base(os.Args[0]) {
	case "nvidia-smi":
		name := "nvidia-smi.txt"
		if hasPrefixArg(os.Args[1:], "--query-gpu=index,utilization.encoder") {
			name = "nvidia-smi-usage.txt"
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fmt.Println("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.")
			os.Exit(9)
		}
		os.Stdout.Write(data)
		return
	}
	args := os.Args[1:]
	if slices.Contains(args, "-encoders") || slices.Contains(args, "-filters") {
		stall(os.Getenv("ITTYBIT_FAKEHW_STALLS"))
	}
	switch {
	case slices.Contains(args, "-encoders"):
		os.Stdout.Write(shared(dir, "encoders.txt"))
		return
	case slices.Contains(args, "-filters"):
		os.Stdout.Write(shared(dir, "filters.txt"))
		return
	case hasPrefixArg(args, "vaapi=va:") && !slices.Contains(args, "-i"):
		data, err := os.ReadFile(filepath.Join(dir, "vaapi.txt"))
		if err != nil {
			data = []byte("[AVHWDeviceContext @ 0x55d82ccf78c0] No VA display found for device /dev/dri/renderD128.\nDevice creation failed: -22.\n")
		}
		os.Stderr.Write(data)
		os.Exit(1)
	case slices.Contains(args, "lavfi"):
		if msg, ok := lookup(dir, "test-encode.txt", value(args, "-c:v")); ok {
			if msg == "ok" {
				return
			}
			fail(value(args, "-c:v"), msg)
		}
	case slices.Contains(args, "-progress"):
		for _, enc := range values(args, "-c:v") {
			if msg, ok := lookup(dir, "encode.txt", enc); ok {
				fail(enc, msg)
			}
		}
	}
	real := os.Getenv("ITTYBIT_FAKEHW_FFMPEG")
	if err := syscall.Exec(real, append([]string{real}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "fakehw: exec %s: %v\n", real, err)
		os.Exit(127)
	}
}

// stall hangs while the count in file is above 0, taking one off it. The
// fake's callers run one detection at a time, so the count needs no lock.
func stall(file string) {
	if file == "" {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n <= 0 {
		return
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(n-1)), 0o600); err != nil {
		return
	}
	time.Sleep(time.Hour) // until killed
}

func fail(encoder, msg string) {
	fmt.Fprintf(os.Stderr, "[%s @ 0x5563a1c0e2c0] %s\n", encoder, msg)
	fmt.Fprintln(os.Stderr, "Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0 - maybe incorrect parameters such as bit_rate, rate, width or height")
	os.Exit(1)
}

// shared reads a scenario file, or the one shared by all scenarios.
func shared(dir, name string) []byte {
	if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
		return data
	}
	data, _ := os.ReadFile(filepath.Join(dir, "..", name))
	return data
}

// lookup finds the line of a scenario file that starts with key.
func lookup(dir, file, key string) (string, bool) {
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == key {
			return v, true
		}
	}
	return "", false
}

func value(args []string, flag string) string {
	if vs := values(args, flag); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// values returns the values of a flag and its stream-specific forms
// (-c:v, -c:v:0, …).
func values(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag || strings.HasPrefix(args[i], flag+":") {
			out = append(out, args[i+1])
		}
	}
	return out
}

func hasPrefixArg(args []string, prefix string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}
