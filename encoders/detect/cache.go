package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/ittybit-oss/ittybit/encoders"
)

// Detection runs ffmpeg (and nvidia-smi, and a test encode per GPU and
// codec): 100 ms and more of process starts, which a command that runs
// one small task pays again each time. The cache keeps each backend's
// report keyed by what it depends on: the ffmpeg and nvidia-smi binaries
// (path, size, modification time, inode) and the device nodes present
// (/dev/dri/*, /dev/nvidia*: names and device numbers). A new driver, a
// GPU added or an ffmpeg upgrade changes the key, and detection runs
// again. `ittybit encoders --refresh` empties it.

// cacheVersion changes when Report's meaning changes.
const cacheVersion = "1"

// cacheKey names what a backend's report depends on.
func cacheKey(cfg Config, b encoders.Backend) string {
	h := sha256.New()
	fmt.Fprintf(h, "v%s %s root=%s\n", cacheVersion, b, cfg.root())
	for _, prog := range []string{cfg.ffmpeg(), cfg.nvidiaSMI()} {
		fmt.Fprintf(h, "%s %s\n", prog, fileIdentity(prog))
	}
	for _, dir := range []string{"/dev/dri", "/dev"} {
		entries, _ := os.ReadDir(cfg.onHost(dir))
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if dir == "/dev/dri" || nvidiaAny.MatchString(e.Name()) {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(h, "%s/%s %s\n", dir, n, fileIdentity(filepath.Join(cfg.onHost(dir), n)))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileIdentity is a program's or a device node's identity: for a name,
// the file on PATH it is; size, time, inode and device numbers.
func fileIdentity(name string) string {
	path := name
	if filepath.Base(name) == name {
		p, err := exec.LookPath(name)
		if err != nil {
			return "absent"
		}
		path = p
	}
	st, err := os.Stat(path)
	if err != nil {
		return "absent"
	}
	id := fmt.Sprintf("%s %d %d", path, st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id += fmt.Sprintf(" ino=%d rdev=%d", sys.Ino, sys.Rdev)
	}
	return id
}

type cached struct {
	Key    string `json:"key"`
	Report Report `json:"report"`
}

func cacheFile(dir string, b encoders.Backend) string {
	return filepath.Join(dir, "detect-"+string(b)+".json")
}

func readCache(dir string, b encoders.Backend, key string) (Report, bool) {
	data, err := os.ReadFile(cacheFile(dir, b))
	if err != nil {
		return Report{}, false
	}
	var c cached
	if json.Unmarshal(data, &c) != nil || c.Key != key || c.Report.Backend != b {
		return Report{}, false
	}
	return c.Report, true
}

// writeCache keeps r; a cache that cannot be written only costs the next
// run its detection.
func writeCache(dir string, b encoders.Backend, key string, r Report) {
	data, err := json.Marshal(cached{Key: key, Report: r})
	if err != nil || os.MkdirAll(dir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".detect-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if os.Rename(tmp.Name(), cacheFile(dir, b)) != nil {
		os.Remove(tmp.Name())
	}
}

// ClearCache forgets every cached report in dir.
func ClearCache(dir string) error {
	matches, _ := filepath.Glob(filepath.Join(dir, "detect-*.json"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// DefaultCacheDir is where the CLI keeps detection reports:
// $XDG_CACHE_HOME/ittybit (~/.cache/ittybit); "" when there is no home.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ittybit")
}
