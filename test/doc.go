// Package test holds ittybit's system tests: the layering rules of the
// design checked with go list, and multi-process tests of real `ittybit
// server` and `ittybit dev` processes on loopback (TestMain builds the
// binary once): a three-node cluster through the whole task API
// (TestCluster), the leader SIGKILLed under write load and every node
// restarted (TestLeaderKill, whose figures `make reliability` writes into
// RELIABILITY.md), and the API docs' curl, Python and JavaScript snippets
// (TestSeedSnippets).
package test
