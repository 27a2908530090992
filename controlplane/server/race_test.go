//go:build race

package server

// raceEnabled: the race detector's shadow memory counts in the resident
// set and is not returned with the heap.
const raceEnabled = true
