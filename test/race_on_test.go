//go:build race

package test

// raceEnabled: the tests run with -race, so the binary under test is built
// with it too, and a data race in a server fails the test that ran it.
const raceEnabled = true
