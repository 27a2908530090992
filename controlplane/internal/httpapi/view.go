package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/ittybit-oss/ittybit/controlplane/api"
)

// ManagedScheme marks a URL in managed storage ("managed://tasks/…") in the
// stored state; readers get a signed, expiring /files/ URL instead.
const ManagedScheme = "managed://"

// view completes a stored task for readers: running steps carry the
// progress kept in the leader's memory, and managed-storage URLs become
// signed URLs.
func (a *API) view(r *http.Request, t *api.Task) {
	for i := range t.Steps {
		s := &t.Steps[i]
		switch {
		case s.Status != api.StepProcessing || a.cfg.Scheduler == nil:
		case s.Parts != nil && !api.PartsDone(s.Parts):
			a.partsProgress(s)
		default:
			if p, ok := a.cfg.Scheduler.Progress(s.ID); ok {
				s.Progress = &p
			}
		}
		if a.cfg.FileURL != nil {
			s.Output = a.signURLs(r, s.Output)
			s.Input = a.signURLs(r, s.Input)
		}
	}
	if t.Output != nil && strings.HasPrefix(*t.Output, ManagedScheme) && a.cfg.FileURL != nil {
		u := a.cfg.FileURL(r, strings.TrimPrefix(*t.Output, ManagedScheme))
		t.Output = &u
	}
}

// partsProgress fills in a split step's progress while its parts run:
// each running part's from the leader's memory, and the step's as the
// frames done over all video parts (for a ladder fanned out, the mean of
// its renditions').
func (a *API) partsProgress(s *api.Step) {
	s.Parts = append([]api.Part(nil), s.Parts...)
	var done, total float64
	for k := range s.Parts {
		p := &s.Parts[k]
		if p.Status == api.StepProcessing {
			if v, ok := a.cfg.Scheduler.Progress(p.ID); ok {
				p.Progress = &v
			}
		}
		var weight float64
		switch p.Kind {
		case api.PartVideo:
			weight = float64(p.Frames)
		case api.PartRendition:
			weight = p.End - p.Start // a ladder's renditions count alike
		}
		if weight <= 0 {
			continue
		}
		total += weight
		if p.Progress != nil {
			done += *p.Progress * weight
		}
	}
	if total > 0 {
		v := done / total
		s.Progress = &v
	}
}

// signURLs rewrites every "url" under an output object.
func (a *API) signURLs(r *http.Request, raw json.RawMessage) json.RawMessage {
	return rewriteManaged(raw, func(key string) (string, bool) { return a.cfg.FileURL(r, key), true })
}

// rewriteManaged replaces each "url" in raw that names managed storage
// with what fn makes of its key, or removes it where fn says not to keep
// it. raw comes back as it was when it names none.
func rewriteManaged(raw json.RawMessage, fn func(key string) (string, bool)) json.RawMessage {
	if len(raw) == 0 || !strings.Contains(string(raw), ManagedScheme) {
		return raw
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if s, ok := val.(string); ok && k == "url" && strings.HasPrefix(s, ManagedScheme) {
					if u, keep := fn(strings.TrimPrefix(s, ManagedScheme)); keep {
						t[k] = u
					} else {
						delete(t, k)
					}
					continue
				}
				walk(val)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}
