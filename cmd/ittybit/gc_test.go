package main

import "testing"

func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 300},          // before the first collection
		{8 * mib, 300},    // small: four times the live data
		{21 * mib, 300},   // 64 MiB of room would be more than three times
		{25 * mib, 256},   // 64 MiB of room
		{32 * mib, 200},   // 64 MiB of room: twice the live data
		{64 * mib, 200},   // twice the live data
		{1024 * mib, 200}, // twice the live data
	} {
		if got := gcPercent(tc.live); got != tc.want {
			t.Errorf("gcPercent(%d MiB) = %d, want %d", tc.live/mib, got, tc.want)
		}
	}
}

func TestFallen(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		peak, live uint64
		want       bool
	}{
		{0, 0, false},
		{400 * mib, 170 * mib, true},  // a burst cancelled: most of it freed
		{400 * mib, 320 * mib, false}, // a fifth freed
		{100 * mib, 20 * mib, true},   // 80 MiB freed
		{80 * mib, 20 * mib, false},   // under 64 MiB freed
		{200 * mib, 200 * mib, false},
	} {
		if got := fallen(tc.peak, tc.live); got != tc.want {
			t.Errorf("fallen(%d MiB, %d MiB) = %v, want %v", tc.peak/mib, tc.live/mib, got, tc.want)
		}
	}
}
