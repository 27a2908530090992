package storage

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// bucketName is the S3 bucket naming rule (as encoders.Validate applies to
// task outputs): 3 to 63 lowercase letters, digits, dots and hyphens.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$`)

// ParseS3URL splits an s3://bucket/key URL. The key is percent-decoded, as
// url.Parse reads a path, and may be empty ("s3://bucket" or
// "s3://bucket/"), which names the whole bucket as a prefix. A query or a
// fragment is refused: S3 URLs carry neither.
func ParseS3URL(s string) (bucket, key string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("parse %q: not a URL: %w", s, err)
	}
	if !strings.EqualFold(u.Scheme, "s3") {
		return "", "", fmt.Errorf("parse %q: not an s3://bucket/key URL", s)
	}
	if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", "", fmt.Errorf("parse %q: an s3:// URL has no user, port, query or fragment", s)
	}
	if !bucketName.MatchString(u.Host) {
		return "", "", fmt.Errorf("parse %q: %q is not a valid bucket name: 3 to 63 lowercase letters, digits, dots and hyphens", s, u.Host)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// s3URL formats bucket and key as an s3:// URL that ParseS3URL reads back.
func s3URL(bucket, key string) string {
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + key}
	return u.String()
}

// joinKey joins S3 key parts with single slashes; empty parts vanish.
func joinKey(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		p = strings.Trim(p, "/")
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(p)
	}
	return b.String()
}
