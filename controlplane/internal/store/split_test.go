package store

import (
	"testing"

	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// TestSplitUpdatesEntryType: updates that split a step or move a part
// travel as part_updates, which a node of an earlier version stops at;
// the others stay step_updates, which every version applies.
func TestSplitUpdatesEntryType(t *testing.T) {
	plain := []state.StepUpdate{{Op: state.OpAssign, StepID: "step_1"}, {Op: state.OpComplete, StepID: "step_2"}}
	if got := updatesCommand(plain); got != cmdStepUpdates {
		t.Errorf("plain updates: %s", got)
	}
	split := append(plain, state.StepUpdate{Op: state.OpSplit, StepID: "step_3"})
	part := append(plain, state.StepUpdate{Op: state.OpComplete, StepID: api.PartID("step_3", 2)})
	for name, ups := range map[string][]state.StepUpdate{"split": split, "part": part} {
		if got := updatesCommand(ups); got != cmdPartUpdates || got.String() != "part_updates" {
			t.Errorf("%s: %s", name, got)
		}
	}
}
