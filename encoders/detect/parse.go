package detect

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ParseEncoders reads `ffmpeg -encoders` into the set of encoder names.
func ParseEncoders(out string) map[string]bool {
	names := map[string]bool{}
	listing := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && strings.Trim(f[0], "-") == "":
			listing = true // the "------" line ends the legend
		case listing && len(f) >= 2 && len(f[0]) == 6:
			names[f[1]] = true
		}
	}
	return names
}

// ParseFilters reads `ffmpeg -filters` into the set of filter names. Each
// listing line is flags, name, inputs->outputs, description.
func ParseFilters(out string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && len(f[0]) == 3 && strings.Contains(f[2], "->") {
			names[f[1]] = true
		}
	}
	return names
}

// GPU is one line of nvidia-smi's GPU query.
type GPU struct {
	Index  string // CUDA device index as nvidia-smi numbers it
	Name   string // "NVIDIA GeForce RTX 3060"
	Driver string // "535.104.05"
}

// GPUQuery is the nvidia-smi query whose output ParseGPUs reads.
var GPUQuery = []string{"--query-gpu=index,name,driver_version", "--format=csv,noheader"}

// ParseGPUs reads the output of nvidia-smi with GPUQuery: one line per GPU,
// "0, NVIDIA GeForce RTX 3060, 535.104.05".
func ParseGPUs(out string) ([]GPU, error) {
	r := csv.NewReader(strings.NewReader(out))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	var gpus []GPU
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse nvidia-smi output: %w", err)
		}
		if len(rec) < 3 || rec[0] == "" || rec[1] == "" {
			return nil, fmt.Errorf("parse nvidia-smi output: unexpected line %q", strings.Join(rec, ", "))
		}
		gpus = append(gpus, GPU{Index: rec[0], Name: strings.TrimSpace(rec[1]), Driver: strings.TrimSpace(rec[2])})
	}
	if len(gpus) == 0 {
		return nil, errors.New("parse nvidia-smi output: no GPU listed")
	}
	return gpus, nil
}

// vaapiDrivers maps what libva prints after "VAAPI driver: " to a short
// name, as Jellyfin matches it.
var vaapiDrivers = []struct{ sign, name string }{
	{"Intel iHD driver", "iHD"},
	{"Intel i965 driver", "i965"},
	{"Mesa Gallium driver", "Mesa Gallium"},
}

// ParseVAAPIDriver reads the stderr of `ffmpeg -v verbose -init_hw_device
// vaapi=va:NODE` and returns the driver's short name ("iHD", "i965", "Mesa
// Gallium", or the driver's own words for others) and its full description.
// It fails, with ffmpeg's reason, when the device could not be opened.
func ParseVAAPIDriver(stderr string) (name, description string, err error) {
	var failure []string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		line := sc.Text()
		// Drop the "[AVHWDeviceContext @ 0x…] " prefix.
		if i := strings.Index(line, "] "); strings.HasPrefix(line, "[") && i > 0 {
			line = line[i+2:]
		}
		if d, ok := strings.CutPrefix(line, "VAAPI driver: "); ok {
			description = strings.TrimSuffix(strings.TrimSpace(d), ".")
			for _, v := range vaapiDrivers {
				if strings.Contains(description, v.sign) {
					return v.name, description, nil
				}
			}
			return description, description, nil
		}
		if strings.Contains(line, "Failed") || strings.Contains(line, "failed") || strings.Contains(line, "No VA display") || strings.Contains(line, "Cannot open") {
			failure = append(failure, strings.TrimSpace(line))
		}
	}
	if len(failure) == 0 {
		return "", "", errors.New("ffmpeg named no VAAPI driver")
	}
	return "", "", errors.New(strings.Join(failure, "; "))
}
