package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/ittybit-oss/ittybit"
)

// S3Config is how to reach S3 or an S3-compatible server. Every field is
// optional: zero values fall back to the standard AWS chain (the
// environment's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION,
// shared profiles, instance and task roles), AWS_ENDPOINT_URL_S3 for the
// endpoint, and ITTYBIT_S3_PATH_STYLE=true for path-style addressing.
type S3Config struct {
	// Endpoint is the base URL of an S3-compatible server
	// ("http://127.0.0.1:7070"); empty means AWS_ENDPOINT_URL_S3, then AWS.
	Endpoint string
	// Region signs requests; empty means the AWS chain, then us-east-1
	// (which S3-compatible servers usually expect).
	Region string
	// PathStyle addresses buckets as endpoint/bucket/key rather than
	// bucket.endpoint/key, as most S3-compatible servers need. It is also
	// on when ITTYBIT_S3_PATH_STYLE=true.
	PathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials from a config
	// file; when empty the AWS chain provides them.
	AccessKeyID     string
	SecretAccessKey string
}

// withDefaults fills what the environment provides for unset fields. The
// AWS chain itself (credentials, region) is resolved by the SDK.
func (c S3Config) withDefaults() S3Config {
	if c.Endpoint == "" {
		c.Endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if strings.EqualFold(os.Getenv("ITTYBIT_S3_PATH_STYLE"), "true") {
		c.PathStyle = true
	}
	return c
}

func (c S3Config) validate() error {
	var errs []error
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs = append(errs, errors.New("static S3 credentials need both an access key id and a secret access key"))
	}
	if c.Endpoint != "" && !IsHTTP(c.Endpoint) {
		errs = append(errs, fmt.Errorf("S3 endpoint %q must be an http:// or https:// URL", c.Endpoint))
	}
	return errors.Join(errs...)
}

// S3 reads and writes s3:// URLs: task inputs, task outputs and managed
// storage. Large objects move in parts, in parallel, through the SDK's
// transfer manager. Methods are safe for concurrent use.
type S3 struct {
	client *s3.Client
	tm     *transfermanager.Client

	// partSize is the multipart part size, also the size from which
	// uploads go multipart; 0 keeps the transfer manager's defaults (8 MiB
	// parts, multipart from 16 MiB). Tests lower it.
	partSize int64
	// copyLimit is the size above which a server-side copy goes multipart
	// (S3 copies at most 5 GiB in one request), in parts of copyPartSize.
	copyLimit, copyPartSize int64
	hooks                   hooks
}

// hooks let tests observe and break transfers; nil fields do nothing.
type hooks struct {
	// source wraps what an upload reads from its local file.
	source func(io.Reader) io.Reader
	// published is called with the location (as Managed.URL writes it) of
	// each object or file once it is visible.
	published func(location string)
}

const (
	defaultCopyLimit    = 5 << 30
	defaultCopyPartSize = 512 << 20
	// dirConcurrency bounds how many files of a directory move at once;
	// each large one also moves several parts at once.
	dirConcurrency = 4
	// failTimeout bounds the clean-up after a failed or cancelled transfer
	// (aborting a multipart upload), run on a fresh context.
	failTimeout = 30 * time.Second
)

// NewS3 returns an S3 client for cfg. It resolves credentials lazily: a
// missing or wrong credential surfaces on the first transfer, as
// fetch_failed or upload_failed with a message naming the cause.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Reads are ranged GETs, which S3 sends without a checksum of
		// their own; validating "when supported" only logs that it could
		// not. Uploads still send checksums.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{client: client, tm: transfermanager.New(client, tmDefaults)}, nil
}

func tmDefaults(o *transfermanager.Options) {
	o.FailTimeout = failTimeout
	// Ranged GETs work on every object; part-numbered GETs only on objects
	// uploaded in parts, and not on every S3-compatible server.
	o.GetObjectType = tmtypes.GetObjectRanges
	// A ranged part carries no checksum of its own to validate (the
	// object's covers all of it); asking only makes the SDK log about it.
	o.DisableChecksumValidation = true
}

// tmOptions applies the part size to one transfer.
func (s *S3) tmOptions(o *transfermanager.Options) {
	if s.partSize > 0 {
		o.PartSizeBytes = s.partSize
		o.MultipartUploadThreshold = s.partSize
	}
}

func (s *S3) published(location string) {
	if s.hooks.published != nil {
		s.hooks.published(location)
	}
}

// stepErr classifies err for a step's report: an *ittybit.Error passes
// through, a cancelled ctx becomes ErrCancelled, anything else becomes kind
// with what was being done and why.
func stepErr(ctx context.Context, kind ittybit.ErrorKind, what string, err error) error {
	var e *ittybit.Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ittybit.Errorf(ittybit.ErrCancelled, "%s: cancelled", what)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ittybit.Errorf(kind, "%s: timed out", what)
	}
	return ittybit.Errorf(kind, "%s: %s", what, describeErr(err))
}

// credentialCodes are the S3 error codes that mean the credentials are
// wrong, expired or not allowed.
var credentialCodes = map[string]bool{
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "AccessDenied": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
}

// describeErr says why an S3 call failed in words an operator can act on;
// the SDK's own text (operation, request id, status) follows, and the S3
// error code always shows.
func describeErr(err error) string {
	msg := describeCause(err)
	if code := ErrorCode(err); code != "" && !strings.Contains(msg, code) {
		msg += " (S3 error code " + code + ")"
	}
	return msg
}

func describeCause(err error) string {
	var status int
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case credentialCodes[code] || status == http.StatusForbidden:
		return "access denied: check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a role, or the config file) and that they may use this bucket (" + err.Error() + ")"
	case code == "NoSuchBucket":
		return "no such bucket (" + err.Error() + ")"
	case code == "NoSuchKey":
		return "no such object"
	case status == http.StatusNotFound:
		return "not found: no such bucket or object"
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return "the object changed during the transfer; retry"
	case status == 0 && (strings.Contains(err.Error(), "get credentials") || strings.Contains(err.Error(), "retrieve credentials")):
		return "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role, or put them in the config file (" + err.Error() + ")"
	}
	return err.Error()
}

// isNotFound reports whether an S3 call failed because the object (or,
// for a HEAD, anything at that key) does not exist.
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// CheckWrite proves the credentials may write to bucket: it puts a tiny
// object under .ittybit-check/ and deletes it again. It returns the S3
// error code ("InvalidAccessKeyId", "NoSuchBucket", …; "" when the server
// gave none) with the error.
func (s *S3) CheckWrite(ctx context.Context, bucket string) (string, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	key := ".ittybit-check/" + hex.EncodeToString(nonce[:])
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("ittybit connection check\n")})
	if err == nil {
		_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
	}
	if err != nil {
		return ErrorCode(err), errors.New(describeErr(err))
	}
	return "", nil
}

// ErrorCode returns the S3 error code of err ("" when it carries none).
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
