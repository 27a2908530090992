package encoders

import "strings"

// Kind is what a task produces: one of the four encode kinds of the API.
type Kind string

// The task kinds of the API. The order is the order the API documents them in.
const (
	KindVideo    Kind = "video"
	KindAudio    Kind = "audio"
	KindImage    Kind = "image"
	KindAdaptive Kind = "adaptive_video"
)

// Kinds lists every task kind, in the API's order.
var Kinds = []Kind{KindVideo, KindAudio, KindImage, KindAdaptive}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// HasVideo reports whether the output of k carries pictures.
func (k Kind) HasVideo() bool { return k == KindVideo || k == KindImage || k == KindAdaptive }

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
