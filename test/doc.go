// Package test holds ittybit's system tests: the layering rules of the
// design checked with go list, and (with the control plane) multi-process
// tests of real clusters, agents and fault injection.
package test
