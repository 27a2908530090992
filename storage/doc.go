// Package storage moves media in and out of ittybit: the SSRF-safe HTTP
// fetcher for task inputs, and (with the control plane) managed storage and
// s3:// URLs.
package storage
