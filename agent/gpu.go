package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/encoders/detect"
)

var (
	gpuEncoderUtilDesc = prometheus.NewDesc("ittybit_gpu_encoder_utilization_ratio",
		"Share of time the GPU's video encoder (NVENC) was busy over the driver's last sampling period, 0 to 1.", []string{"gpu"}, nil)
	gpuDecoderUtilDesc = prometheus.NewDesc("ittybit_gpu_decoder_utilization_ratio",
		"Share of time the GPU's video decoder (NVDEC) was busy over the driver's last sampling period, 0 to 1.", []string{"gpu"}, nil)
	gpuSessionsDesc = prometheus.NewDesc("ittybit_gpu_encoder_sessions",
		"NVENC sessions open on the GPU, by every process on the host.", []string{"gpu"}, nil)
	gpuSuccessDesc = prometheus.NewDesc("ittybit_gpu_query_success",
		"1 when this scrape's nvidia-smi query answered, else 0.", nil, nil)
)

// GPUUsageFunc reads the GPUs' video-engine usage; detect.QueryGPUUsage
// with a short timeout is one.
type GPUUsageFunc func(ctx context.Context) ([]detect.GPUUsage, error)

// GPUCollector exports NVIDIA video-engine usage per GPU, read at each
// scrape (node_exporter's pattern: the I/O is one call, the parsing is in
// detect and tested on captured output). A figure the GPU does not report
// is left out, not exported as 0.
type GPUCollector struct {
	query   GPUUsageFunc
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	failing bool // the last query failed: log the next failure only once
}

var _ prometheus.Collector = (*GPUCollector)(nil)

// NewGPUCollector returns a collector over query; register it on hosts
// with NVIDIA GPUs only (HasNVIDIA).
func NewGPUCollector(query GPUUsageFunc, logger *slog.Logger) *GPUCollector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &GPUCollector{query: query, timeout: 5 * time.Second, log: logger.With("component", "gpu")}
}

// HasNVIDIA reports whether capability rows name an NVIDIA GPU (one that
// encodes or, like the H100, only decodes).
func HasNVIDIA(caps []encoders.Capability) bool {
	for _, c := range caps {
		if c.Backend == encoders.BackendNVENC && c.Device != "" {
			return true
		}
	}
	return false
}

// Describe sends the collector's descriptions.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gpuEncoderUtilDesc
	ch <- gpuDecoderUtilDesc
	ch <- gpuSessionsDesc
	ch <- gpuSuccessDesc
}

// Collect queries the GPUs once.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	gpus, err := c.query(ctx)
	c.mu.Lock()
	if err != nil && !c.failing {
		c.log.Warn("GPU usage query failed; GPU figures are missing until it works again", "err", err)
	} else if err == nil && c.failing {
		c.log.Info("GPU usage query works again")
	}
	c.failing = err != nil
	c.mu.Unlock()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(gpuSuccessDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(gpuSuccessDesc, prometheus.GaugeValue, 1)
	for _, g := range gpus {
		for _, f := range []struct {
			desc *prometheus.Desc
			v    *float64
		}{{gpuEncoderUtilDesc, g.EncoderUtilization}, {gpuDecoderUtilDesc, g.DecoderUtilization}, {gpuSessionsDesc, g.EncoderSessions}} {
			if f.v != nil {
				ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, *f.v, g.Index)
			}
		}
	}
}
