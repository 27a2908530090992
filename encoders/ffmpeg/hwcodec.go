package ffmpeg

import (
	"strconv"

	"github.com/ittybit-oss/ittybit/encoders"
)

// encoderArgs returns a hardware encoder with its preset and profile
// (docs/hardware.md §2.1–2.3); spec is a stream specifier suffix.
func (h *hardware) encoderArgs(v *encoders.VideoPlan, spec string) []string {
	a := []string{"-c:v" + spec, v.Encoder}
	if v.Preset != "" {
		a = append(a, "-preset"+spec, v.Preset)
	}
	if h.Backend == encoders.BackendNVENC {
		a = append(a, "-tune"+spec, "hq")
	}
	switch v.Codec {
	case encoders.CodecH264:
		a = append(a, "-profile:v"+spec, "high")
	case encoders.CodecH265:
		// hvc1, not hev1, for Apple's players, as with libx265.
		a = append(a, "-profile:v"+spec, "main", "-tag:v"+spec, "hvc1")
	}
	return a
}

// rateArgs renders rate control for a hardware encoder
// (docs/hardware.md §2.6): constant quality as NVENC's CQ, QSV's
// ICQ (global_quality) or VAAPI's CQP; a bitrate, or a quality with a
// cap, as capped VBR.
func (h *hardware) rateArgs(rc encoders.RateControl, spec string) []string {
	switch h.Backend {
	case encoders.BackendNVENC:
		// NVENC caps constant quality natively.
		a := []string{"-rc" + spec, "vbr"}
		if rc.Mode == encoders.RateQuality {
			a = append(a, "-cq"+spec, strconv.Itoa(rc.Value), bitrateFlag(spec), "0")
		} else {
			a = append(a, bitrateFlag(spec), kbits(rc.Bitrate))
		}
		if rc.MaxRate > 0 {
			a = append(a, "-maxrate"+spec, kbits(rc.MaxRate), "-bufsize"+spec, kbits(rc.BufSize))
		}
		return a
	case encoders.BackendQSV:
		if rc.Mode == encoders.RateQuality && rc.MaxRate == 0 {
			return []string{"-global_quality" + spec, strconv.Itoa(rc.Value)}
		}
		// ICQ ignores a cap: capped quality and bitrates run as VBR,
		// maxrate one above the target so QSV picks VBR, not CBR
		// (Jellyfin).
		b := capTarget(rc)
		return []string{bitrateFlag(spec), kbits(b), "-maxrate" + spec, kbits(b + 1), "-bufsize" + spec, kbits(2 * b)}
	default: // VAAPI
		if rc.Mode == encoders.RateQuality && rc.MaxRate == 0 {
			return []string{"-rc_mode" + spec, "CQP", "-qp" + spec, strconv.Itoa(rc.Value)}
		}
		// CQP cannot be capped: capped quality and bitrates run as
		// Jellyfin's streaming VBR, or CBR on i965, whose VBR pixelates.
		mode := "VBR"
		if h.dev.Driver == "i965" {
			mode = "CBR"
		}
		b := capTarget(rc)
		return []string{"-rc_mode" + spec, mode, bitrateFlag(spec), kbits(b), "-maxrate" + spec, kbits(b), "-bufsize" + spec, kbits(2 * b)}
	}
}

// bitrateFlag is -b:v, or -b with a stream specifier (-b:v:0).
func bitrateFlag(spec string) string {
	if spec == "" {
		return "-b:v"
	}
	return "-b" + spec
}

// capTarget is the bitrate a capped mode aims at: the bitrate, or for a
// capped quality the cap.
func capTarget(rc encoders.RateControl) int64 {
	if rc.Mode == encoders.RateBitrate {
		return rc.Bitrate
	}
	return rc.MaxRate
}

// keyframeArgs fix keyframes for HLS. NVENC and QSV ignore forced
// keyframes (Jellyfin: "Unable to force key frames using these
// encoders"), so their fixed GOP (-g, set per rendition) is the alignment,
// with NVENC's scene-cut keyframes off; VAAPI takes forced times as well.
func (h *hardware) keyframeArgs(expr string) []string {
	switch h.Backend {
	case encoders.BackendNVENC:
		return []string{"-no-scenecut", "1"}
	case encoders.BackendVAAPI:
		return []string{"-force_key_frames", expr}
	}
	return nil
}
