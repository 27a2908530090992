package encoders

import (
	"cmp"
	"slices"
)

// Capability is one thing an encoder plugin can or cannot do on this
// machine: encode one codec with one backend on one device. Its JSON is a
// row of `ittybit encoders --json` (the external contract) and what an
// agent advertises to the scheduler.
type Capability struct {
	// Plugin names the plugin that offers it ("software", "nvenc", or an
	// external plugin's name).
	Plugin  string  `json:"plugin"`
	Backend Backend `json:"backend"`
	// Codec is a video codec of the API: h264, h265, vp9, av1.
	Codec     string `json:"codec"`
	Available bool   `json:"available"`
	// Reason says why it is not available; "" when it is.
	Reason string `json:"reason"`
	// Device names the hardware: a render node ("/dev/dri/renderD128"), a
	// GPU ("GPU 0: NVIDIA GeForce RTX 3060 (driver 535.104.05)"), or "" for
	// software. A plugin understands the names it reported.
	Device string `json:"device"`
	// MaxSessions is how many encodes the device runs at once; 0 means no
	// limit (consumer NVENC cards have one, set by the driver).
	MaxSessions int `json:"max_sessions"`
}

// Hardware reports whether b is a GPU backend.
func (b Backend) Hardware() bool { return b != BackendSoftware && b != "" }

// Known reports whether b is one of Backends.
func (b Backend) Known() bool { return slices.Contains(Backends, b) }

// SortCapabilities orders one plugin's rows for display: by backend in the
// order of Backends, then device, then codec in the order of VideoCodecs.
func SortCapabilities(cs []Capability) {
	rank := func(list []string, s string) int {
		if i := slices.Index(list, s); i >= 0 {
			return i
		}
		return len(list)
	}
	backends := make([]string, len(Backends))
	for i, b := range Backends {
		backends[i] = string(b)
	}
	slices.SortStableFunc(cs, func(a, b Capability) int {
		return cmp.Or(
			cmp.Compare(rank(backends, string(a.Backend)), rank(backends, string(b.Backend))),
			cmp.Compare(a.Device, b.Device),
			cmp.Compare(rank(VideoCodecs, a.Codec), rank(VideoCodecs, b.Codec)),
		)
	})
}
