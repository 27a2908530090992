package encoders

// Capability is one thing a host can encode with: a plugin's backend for a
// codec, available or not and why. Its JSON is a row of `ittybit encoders
// --json`.
type Capability struct {
	Plugin      string  `json:"plugin"`
	Backend     Backend `json:"backend"`
	Codec       string  `json:"codec"`
	Available   bool    `json:"available"`
	Reason      string  `json:"reason"`       // why not available ("" when available)
	Device      string  `json:"device"`       // the GPU or render node; "" for software
	MaxSessions int     `json:"max_sessions"` // concurrent encodes the device allows; 0 = unlimited
}
