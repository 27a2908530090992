package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/steps"
	"github.com/ittybit-oss/ittybit/storage"
	"github.com/ittybit-oss/ittybit/storage/s3test"
)

// TestDeliverAgain: an upload attempt that published the result and
// dropped the staged copy may lose its report on the way (the leader took
// the step back meanwhile). The next attempt, on a node without the
// encode, finds the staged copy gone and the result published, and reports
// that result: to managed storage and to an s3:// output alike. Where the
// result is not there either, it fails upload_failed.
func TestDeliverAgain(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.MakeBucket(t, "out")
	s3c, err := storage.NewS3(ctx, srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	managed, err := storage.OpenManaged(ctx, t.TempDir(), storage.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Managed: managed, S3: s3c, Metrics: NewMetrics(nil), WorkDir: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
	f := nodeFiles{a}
	dest := "s3://out/films/a.mp4"
	for _, tc := range []struct {
		name   string
		output *string
	}{{"managed", nil}, {"s3", &dest}} {
		t.Run(tc.name, func(t *testing.T) {
			task := api.AssignedTask{ID: "task_" + tc.name, Kind: encoders.KindVideo, Input: "https://example.com/a.mov", Output: tc.output}
			dir, name := f.encodeDir(task.ID, 1), steps.ResultName(task)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte("0123456789"), 0o600); err != nil {
				t.Fatal(err)
			}
			staged, err := f.Stage(ctx, task, 1, encoders.File{URL: filepath.Join(dir, name), Filesize: 10})
			if err != nil {
				t.Fatal(err)
			}
			first, err := f.Deliver(ctx, task, staged)
			if err != nil {
				t.Fatal(err)
			}
			// The next attempt runs elsewhere: no encode here, no staged copy.
			if err := os.RemoveAll(a.taskDir(task.ID)); err != nil {
				t.Fatal(err)
			}
			again, err := f.Deliver(ctx, task, staged)
			if err != nil {
				t.Fatalf("delivered again: %v", err)
			}
			if diff := cmp.Diff(first, again); diff != "" {
				t.Errorf("delivered again (-first +again):\n%s", diff)
			}
			// Gone from its destination too: nothing to report.
			if tc.output == nil {
				err = managed.DeletePrefix(ctx, "tasks/"+task.ID)
			} else {
				bucket, key := "out", "films/a.mp4"
				_, err = srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
			}
			if err != nil {
				t.Fatal(err)
			}
			var ie *ittybit.Error
			if _, err := f.Deliver(ctx, task, staged); !errors.As(err, &ie) || ie.Kind != ittybit.ErrUploadFailed {
				t.Errorf("delivered with the result gone: %v, want upload_failed", err)
			}
		})
	}
}
