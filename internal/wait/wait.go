// Package wait is the one way tests wait for something: poll a condition
// until it holds or a deadline passes, then fail with what it last said.
// No test sleeps for a fixed time and hopes (rqlite's WaitForLeader, not
// hraftd's sleep).
package wait

import (
	"errors"
	"testing"
	"time"
)

// Every is how often a condition is polled.
const Every = 10 * time.Millisecond

// For calls cond every Every until it returns nil; after timeout it fails
// tb with what, the timeout and cond's last error.
func For(tb testing.TB, what string, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(Every) // polling a condition, with a deadline
	}
}

// errNotYet is what a false condition reports.
var errNotYet = errors.New("not yet")

// Until is For with a condition that is true or not yet.
func Until(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	For(tb, what, timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}
