package detect

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// GPUUsage is how busy one NVIDIA GPU's video engines are, as nvidia-smi
// samples them. A nil field is one the GPU does not report ("[N/A]",
// "[Not Supported]"): the H100's encoder, say, which it does not have.
type GPUUsage struct {
	// Index is the GPU's index as nvidia-smi numbers it ("0").
	Index string
	// EncoderUtilization and DecoderUtilization are the share of the
	// driver's last sampling period that NVENC and NVDEC were busy, 0 to 1.
	EncoderUtilization *float64
	DecoderUtilization *float64
	// EncoderSessions is the number of NVENC sessions open on the GPU, by
	// every process, not only ittybit's.
	EncoderSessions *float64
}

// GPUUsageQuery is the nvidia-smi query whose output ParseGPUUsage reads.
var GPUUsageQuery = []string{
	"--query-gpu=index,utilization.encoder,utilization.decoder,encoder.stats.sessionCount",
	"--format=csv,noheader,nounits",
}

// QueryGPUUsage runs nvidia-smi with GPUUsageQuery and parses its answer.
// It is what a metrics scrape calls: keep cfg.Timeout short.
func QueryGPUUsage(ctx context.Context, cfg Config) ([]GPUUsage, error) {
	out, err := cfg.output(ctx, cfg.nvidiaSMI(), GPUUsageQuery...)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi failed: %w", err)
	}
	return ParseGPUUsage(out)
}

// ParseGPUUsage reads the output of nvidia-smi with GPUUsageQuery: one line
// per GPU, "0, 37, 5, 2" (index, encoder and decoder utilisation in
// percent, encoder sessions).
func ParseGPUUsage(out string) ([]GPUUsage, error) {
	r := csv.NewReader(strings.NewReader(out))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	var gpus []GPUUsage
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse nvidia-smi usage: %w", err)
		}
		if len(rec) != 4 || strings.TrimSpace(rec[0]) == "" {
			return nil, fmt.Errorf("parse nvidia-smi usage: unexpected line %q", strings.Join(rec, ", "))
		}
		g := GPUUsage{Index: strings.TrimSpace(rec[0])}
		var bad []string
		field := func(s string, scale float64) *float64 {
			s = strings.TrimSpace(s)
			if notReported(s) {
				return nil
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
			if err != nil || v < 0 {
				bad = append(bad, s)
				return nil
			}
			v *= scale
			return &v
		}
		g.EncoderUtilization = field(rec[1], 0.01)
		g.DecoderUtilization = field(rec[2], 0.01)
		g.EncoderSessions = field(rec[3], 1)
		if len(bad) > 0 {
			return nil, fmt.Errorf("parse nvidia-smi usage: GPU %s: unexpected values %q", g.Index, bad)
		}
		gpus = append(gpus, g)
	}
	if len(gpus) == 0 {
		return nil, errors.New("parse nvidia-smi usage: no GPU listed")
	}
	return gpus, nil
}

// notReported reports whether an nvidia-smi value says the GPU has no
// figure: "[N/A]", "[Not Supported]", "[Unknown Error]" and their kin.
func notReported(s string) bool {
	return s == "" || strings.HasPrefix(s, "[") || strings.EqualFold(s, "N/A")
}
