package detect_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit/encoders/detect"
	"github.com/ittybit-oss/ittybit/encoders/encoderstest"
)

func f(v float64) *float64 { return &v }

// TestQueryGPUUsage runs the fake nvidia-smi: the I/O and the parser
// together, as a metrics scrape does.
func TestQueryGPUUsage(t *testing.T) {
	for _, tc := range []struct {
		host string
		want []detect.GPUUsage
		err  string
	}{
		{host: encoderstest.HostNVIDIA535, want: []detect.GPUUsage{{Index: "0", EncoderUtilization: f(0.37), DecoderUtilization: f(0.05), EncoderSessions: f(2)}}},
		{host: encoderstest.HostH100, want: []detect.GPUUsage{{Index: "0", DecoderUtilization: f(0.14)}, {Index: "1", DecoderUtilization: f(0)}}},
		{host: encoderstest.HostNone, err: "nvidia-smi failed: exit status 9: NVIDIA-SMI has failed"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			encoderstest.NewFakeHardware(t, tc.host).Install(t)
			got, err := detect.QueryGPUUsage(t.Context(), detect.Config{})
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q…", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpFloat); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// cmpFloat compares utilisations computed as percent × 0.01.
var cmpFloat = cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
