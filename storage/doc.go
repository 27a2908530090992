// Package storage moves media in and out of ittybit:
//
//   - Fetcher, the SSRF-safe HTTP fetcher for task inputs;
//   - S3, reading and writing s3:// URLs (inputs, outputs), multipart for
//     large files;
//   - Managed, ittybit's own storage (a local directory or an S3 bucket and
//     prefix) with atomic writes and ordered publication of results;
//   - Signer and FilesHandler, the signed, expiring /files/ URLs that serve
//     managed files, HLS renditions included.
package storage
