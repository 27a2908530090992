package agent

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ittybit-oss/ittybit"
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
	"github.com/ittybit-oss/ittybit/steps"
	"github.com/ittybit-oss/ittybit/storage"
)

// managedScheme marks managed-storage URLs in step outputs; the API signs
// them for readers.
const managedScheme = "managed://"

// nodeFiles keeps a task's files as the cluster needs them: a copy on this
// node's disk while it works, and in managed storage what another node
// may need next (the ingested source, the staged encode), so any node can
// run any step.
type nodeFiles struct{ a *Agent }

var _ steps.Files = nodeFiles{}

// sourcePath is where the fetched source lives on this node.
func (f nodeFiles) sourcePath(t api.AssignedTask) string {
	return filepath.Join(f.a.taskDir(t.ID), steps.SourceName(t.Input))
}

func sourceKey(taskID string) string { return "tasks/" + taskID + "/source" }

// Source fetches the input from its origin unless this node has it: the
// probe step, or the ingest step after another node probed.
func (f nodeFiles) Source(ctx context.Context, t api.AssignedTask, _ func(encoders.Progress)) (string, error) {
	src := f.sourcePath(t)
	if exists(src) {
		return src, nil
	}
	return src, f.fetch(ctx, t, src)
}

// fetch brings the task's input from its origin.
func (f nodeFiles) fetch(ctx context.Context, t api.AssignedTask, dst string) error {
	cfg := f.a.cfg
	tmp := dst + ".part"
	defer os.Remove(tmp)
	var n int64
	if strings.HasPrefix(t.Input, "s3://") {
		s3c, err := f.s3For(ctx, t, t.Input, ittybit.ErrFetchFailed)
		if err != nil {
			return err
		}
		if n, err = s3c.Download(ctx, t.Input, tmp, cfg.MaxInputBytes); err != nil {
			return err
		}
	} else {
		w, err := os.Create(tmp)
		if err != nil {
			return ittybit.Errorf(ittybit.ErrInternal, "create download: %v", err)
		}
		n, err = cfg.Fetcher.Fetch(ctx, t.Input, w)
		if cerr := w.Close(); err == nil && cerr != nil {
			err = ittybit.Errorf(ittybit.ErrInternal, "write download: %v", cerr)
		}
		if err != nil {
			return err
		}
	}
	cfg.Metrics.bytes.WithLabelValues("ingest").Add(float64(n))
	return os.Rename(tmp, dst)
}

// Ingest keeps the source in managed storage.
func (f nodeFiles) Ingest(ctx context.Context, t api.AssignedTask, src string) (string, error) {
	key := sourceKey(t.ID)
	if err := f.a.store(ctx, key, src); err != nil {
		return "", ittybit.Errorf(ittybit.ErrUploadFailed, "store the source: %v", err)
	}
	return managedScheme + key, nil
}

// Ingested is this node's copy of the source, else the ingested one.
func (f nodeFiles) Ingested(ctx context.Context, t api.AssignedTask) (string, error) {
	src := f.sourcePath(t)
	if exists(src) {
		return src, nil
	}
	if err := f.a.cfg.Managed.Get(ctx, sourceKey(t.ID), src); err != nil {
		return "", ittybit.Errorf(ittybit.ErrFetchFailed, "read the ingested source: %v", err)
	}
	return src, nil
}

// encodeDir is where an attempt's encode result lives on this node.
func (f nodeFiles) encodeDir(taskID string, attempt int) string {
	return filepath.Join(f.a.taskDir(taskID), fmt.Sprintf("encode-%d", attempt))
}

// EncodeTo is a fresh folder of the attempt's.
func (f nodeFiles) EncodeTo(t api.AssignedTask, attempt int) (string, error) {
	dir := f.encodeDir(t.ID, attempt)
	if err := os.RemoveAll(dir); err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "clear the encode folder: %v", err)
	}
	return filepath.Join(dir, steps.ResultName(t)), nil
}

// stagingPrefix is where an attempt's encode result is kept in managed
// storage until the upload step publishes it.
func stagingPrefix(taskID string, attempt int) string {
	return fmt.Sprintf("tasks/%s/staging/%d", taskID, attempt)
}

// Stage keeps the attempt's result in managed storage.
func (f nodeFiles) Stage(ctx context.Context, t api.AssignedTask, attempt int, res encoders.File) (encoders.File, error) {
	dir, name := f.encodeDir(t.ID, attempt), steps.ResultName(t)
	prefix := stagingPrefix(t.ID, attempt)
	var err error
	if t.Kind == encoders.KindAdaptive {
		err = f.a.cfg.Managed.PutDir(ctx, prefix, dir, name)
	} else {
		err = f.a.store(ctx, prefix+"/"+name, filepath.Join(dir, name))
	}
	if err != nil {
		return encoders.File{}, ittybit.Errorf(ittybit.ErrUploadFailed, "stage the result: %v", err)
	}
	return relocate(res, dir, managedScheme+prefix+"/"), nil
}

// published reports whether the entry point of a result is in managed
// storage.
func published(ctx context.Context, m Managed, key string) bool {
	f, err := m.Open(ctx, key)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// relocate rewrites a result's local paths (under dir) as URLs under base.
func relocate(f encoders.File, dir, base string) encoders.File {
	return f.MapURLs(func(p string) string {
		r, err := filepath.Rel(dir, p)
		if err != nil || strings.HasPrefix(r, "..") {
			return base + filepath.Base(p)
		}
		return base + filepath.ToSlash(r)
	})
}

// Deliver publishes the staged result: to the task's s3:// output, or in
// managed storage. The entry point (the file, or the HLS master playlist)
// appears last, so no partial result is ever visible.
func (f nodeFiles) Deliver(ctx context.Context, t api.AssignedTask, staged encoders.File) (encoders.File, error) {
	cfg := f.a.cfg
	stagedPrefix := strings.TrimPrefix(staged.URL, managedScheme)
	stagedPrefix = stagedPrefix[:max(strings.LastIndex(stagedPrefix, "/"), 0)]
	name := steps.ResultName(t)
	dest := ""
	if t.Output != nil {
		dest = *t.Output
	}
	if dest == "" {
		final := "tasks/" + t.ID
		if err := cfg.Managed.CopyDir(ctx, stagedPrefix, final, name); err != nil {
			if !published(ctx, cfg.Managed, final+"/"+name) {
				return encoders.File{}, ittybit.Errorf(ittybit.ErrUploadFailed, "publish the result: %v", err)
			}
			// An earlier attempt published it and dropped the staged copy,
			// and its report was lost on the way: the result is there.
			return rebase(staged, managedScheme+stagedPrefix+"/", managedScheme+final+"/"), nil
		}
		cfg.Metrics.bytes.WithLabelValues("upload").Add(float64(deliveredBytes(staged)))
		f.dropStaging(ctx, t)
		return rebase(staged, managedScheme+stagedPrefix+"/", managedScheme+final+"/"), nil
	}
	s3c, err := f.s3For(ctx, t, dest, ittybit.ErrUploadFailed)
	if err != nil {
		return encoders.File{}, err
	}
	// The staged copy on this node, or fetched from managed storage.
	local := ""
	var attempt int
	if _, err := fmt.Sscanf(path.Base(stagedPrefix), "%d", &attempt); err == nil {
		if dir := f.encodeDir(t.ID, attempt); exists(filepath.Join(dir, name)) {
			local = dir
		}
	}
	destBase, entry := dest, dest // where the result goes; its entry point, uploaded last
	if t.Kind == encoders.KindAdaptive {
		if !strings.HasSuffix(destBase, "/") {
			destBase = destBase[:strings.LastIndex(destBase, "/")+1]
		}
		entry = destBase + name
	} else {
		destBase = dest[:strings.LastIndex(dest, "/")+1]
	}
	out := rebase(staged, managedScheme+stagedPrefix+"/", destBase)
	if t.Kind != encoders.KindAdaptive {
		out.URL = dest
	}
	if local == "" {
		local = filepath.Join(f.a.taskDir(t.ID), "upload")
		os.RemoveAll(local)
		if err := cfg.Managed.GetDir(ctx, stagedPrefix, local); err != nil {
			// An earlier attempt uploaded it and dropped the staged copy,
			// and its report was lost on the way: the result is there.
			if n, serr := s3c.Size(ctx, entry); serr == nil && (t.Kind == encoders.KindAdaptive || n == staged.Filesize) {
				return out, nil
			}
			return encoders.File{}, ittybit.Errorf(ittybit.ErrUploadFailed, "read the staged result: %v", err)
		}
	}
	if t.Kind == encoders.KindAdaptive {
		err = s3c.UploadDir(ctx, local, destBase, name)
	} else {
		err = s3c.Upload(ctx, filepath.Join(local, name), dest)
	}
	if err != nil {
		return encoders.File{}, err
	}
	cfg.Metrics.bytes.WithLabelValues("upload").Add(float64(deliveredBytes(staged)))
	f.dropStaging(ctx, t)
	return out, nil
}

// s3For returns the S3 client for url: one made for this step from the
// credentials its assignment carries for url's bucket (a project's
// connection: kept in memory for the step, never written anywhere), or
// the agent's own.
func (f nodeFiles) s3For(ctx context.Context, t api.AssignedTask, url string, kind ittybit.ErrorKind) (S3, error) {
	if bucket, _, err := storage.ParseS3URL(url); err == nil {
		for _, a := range t.S3 {
			if a.Bucket != bucket {
				continue
			}
			c, err := storage.NewS3(ctx, storage.S3Config{Endpoint: a.Endpoint, Region: a.Region, PathStyle: a.PathStyle, AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey})
			if err != nil {
				return nil, ittybit.Errorf(kind, "the connection for bucket %s: %v", bucket, err)
			}
			return c, nil
		}
	}
	if f.a.cfg.S3 == nil {
		return nil, ittybit.Errorf(kind, "this agent has no S3 access configured for %s", url)
	}
	return f.a.cfg.S3, nil
}

// deliveredBytes is the size of a result: the file, or an HLS master
// playlist and its renditions.
func deliveredBytes(f encoders.File) int64 {
	n := f.Filesize
	for _, r := range f.Renditions {
		n += r.Filesize
	}
	return n
}

// rebase moves a file object's URLs from one base to another.
func rebase(f encoders.File, from, to string) encoders.File {
	return f.MapURLs(func(u string) string { return to + strings.TrimPrefix(u, from) })
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dropStaging removes a task's staged encodes and kept parts once the
// result is delivered; a failure only leaves garbage behind.
func (f nodeFiles) dropStaging(ctx context.Context, t api.AssignedTask) {
	for _, dir := range []string{"staging", "parts"} {
		if err := f.a.cfg.Managed.DeletePrefix(ctx, "tasks/"+t.ID+"/"+dir); err != nil {
			f.a.log.Warn("remove staged results", "task_id", t.ID, "err", err)
		}
	}
}

// linker is managed storage that can take a file without copying it.
type linker interface {
	Link(ctx context.Context, key, localPath string) error
}

// store puts a local file into managed storage: linked when the store is
// a folder on the same filesystem (a large source is not copied), copied
// otherwise. The file is not written again afterwards.
func (a *Agent) store(ctx context.Context, key, localPath string) error {
	if l, ok := a.cfg.Managed.(linker); ok {
		if err := l.Link(ctx, key, localPath); err == nil {
			return nil
		}
	}
	return a.cfg.Managed.Put(ctx, key, localPath)
}

// partPath is where an attempt's part lives on this node.
func (f nodeFiles) partPath(t api.AssignedTask, part api.Part, attempt int) string {
	return filepath.Join(f.a.taskDir(t.ID), "parts", strconv.Itoa(attempt)+"-"+partFile(t, part))
}

// partKey is where an attempt's part is kept in managed storage.
func partKey(t api.AssignedTask, part api.Part, attempt int) string {
	return fmt.Sprintf("tasks/%s/parts/%d/%s", t.ID, attempt, partFile(t, part))
}

// partFile is the file name of a part of the task's split step.
func partFile(t api.AssignedTask, p api.Part) string {
	return encoders.PartFile(encoders.Part{Index: p.Index, Kind: encoders.PartKind(p.Kind)}, steps.ResultFormat(t))
}

// PartTo is the part's file in this node's work folder.
func (f nodeFiles) PartTo(t api.AssignedTask, part api.Part, attempt int) (string, error) {
	p := f.partPath(t, part, attempt)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", ittybit.Errorf(ittybit.ErrInternal, "create the parts folder: %v", err)
	}
	return p, nil
}

// KeepPart puts the part in managed storage, where any node can stitch it.
func (f nodeFiles) KeepPart(ctx context.Context, t api.AssignedTask, part api.Part, attempt int, path string) error {
	if err := f.a.store(ctx, partKey(t, part, attempt), path); err != nil {
		return ittybit.Errorf(ittybit.ErrUploadFailed, "keep part %d: %v", part.Index, err)
	}
	return nil
}

// GetPart links this node's copy of a completed part, or fetches it.
func (f nodeFiles) GetPart(ctx context.Context, t api.AssignedTask, part api.Part, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return ittybit.Errorf(ittybit.ErrInternal, "create the stitch folder: %v", err)
	}
	os.Remove(path)
	if local := f.partPath(t, part, part.Attempt); exists(local) {
		if err := os.Link(local, path); err == nil {
			return nil
		}
	}
	if err := f.a.cfg.Managed.Get(ctx, partKey(t, part, part.Attempt), path); err != nil {
		return ittybit.Errorf(ittybit.ErrFetchFailed, "read part %d: %v", part.Index, err)
	}
	return nil
}
