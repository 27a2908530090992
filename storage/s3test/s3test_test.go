package s3test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestRestart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket, key, body := "rotate", "a/b.txt", "kept across the restart"
	s.MakeBucket(t, bucket)
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: strings.NewReader(body),
	}); err != nil {
		t.Fatalf("put with the first credentials: %v", err)
	}
	oldAccess, oldSecret, endpoint := s.AccessKey, s.SecretKey, s.Endpoint

	newAccess := "ittybit" + strings.ToLower(rand.Text()[:12])
	newSecret := rand.Text() + rand.Text()
	s.Restart(t, newAccess, newSecret)
	if s.Endpoint != endpoint {
		t.Errorf("endpoint %s after the restart, want %s as before", s.Endpoint, endpoint)
	}
	if s.AccessKey != newAccess || s.SecretKey != newSecret {
		t.Errorf("credentials after the restart are not the new ones")
	}

	client := func(access, secret string) *s3.Client {
		return s3.New(s3.Options{
			Region:       region,
			BaseEndpoint: aws.String(endpoint),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		})
	}
	get := func(c *s3.Client) (string, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), err
	}

	// refused checks that the server answered err, rather than being
	// unreachable.
	refused := func(what string, err error) {
		t.Helper()
		var api smithy.APIError
		if err == nil {
			t.Errorf("%s succeeded, want it refused", what)
		} else if !errors.As(err, &api) {
			t.Errorf("%s: %v; want the server to refuse it", what, err)
		}
	}
	_, err := get(client(oldAccess, oldSecret))
	refused("get with the old credentials", err)
	_, err = client(oldAccess, oldSecret).ListBuckets(ctx, &s3.ListBucketsInput{})
	refused("list buckets with the old credentials", err)
	for name, c := range map[string]*s3.Client{"new credentials": client(newAccess, newSecret), "Client()": s.Client()} {
		got, err := get(c)
		if err != nil {
			t.Fatalf("get with %s: %v", name, err)
		}
		if got != body {
			t.Errorf("get with %s = %q, want %q", name, got, body)
		}
	}

	// A second restart works too, and Config follows the credentials.
	s.Restart(t, oldAccess, oldSecret)
	if cfg := s.Config(); cfg.AccessKeyID != oldAccess || cfg.SecretAccessKey != oldSecret || cfg.Endpoint != endpoint {
		t.Errorf("Config after the second restart does not hold the server's endpoint and credentials")
	}
	_, err = get(client(newAccess, newSecret))
	refused("get with the replaced credentials", err)
	if got, err := get(s.Client()); err != nil || got != body {
		t.Errorf("get after the second restart = %q, %v; want %q", got, err, body)
	}
}
