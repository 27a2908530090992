package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalLink(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManaged(context.Background(), filepath.Join(dir, "store"), S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "source")
	if err := os.WriteFile(src, []byte("media"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, ok := m.(interface {
		Link(ctx context.Context, key, localPath string) error
	})
	if !ok {
		t.Fatal("the local store cannot link")
	}
	if err := l.Link(context.Background(), "tasks/t1/source", src); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "got")
	if err := m.Get(context.Background(), "tasks/t1/source", got); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(got); string(data) != "media" {
		t.Errorf("got %q", data)
	}
	if err := l.Link(context.Background(), "../escape", src); err == nil {
		t.Error("linked outside the store")
	}
	os.Remove(src) // the store keeps its link
	if err := m.Get(context.Background(), "tasks/t1/source", got); err != nil {
		t.Errorf("after the source went: %v", err)
	}
}
