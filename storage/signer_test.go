package storage_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ittybit-oss/ittybit/storage"
)

var (
	testSigner = storage.Signer{Secret: []byte("0123456789abcdef0123456789abcdef")}
	t0         = time.Unix(1_800_000_000, 0)
)

func TestSignerVerifiesItsPaths(t *testing.T) {
	for _, key := range []string{
		"tasks/t1/master.m3u8",
		"tasks/t1/720p/seg-00001.m4s",
		"tasks/task_01H/a b+c%.mp4",
		"tasks/t1/été.jpg",
	} {
		p := testSigner.Path(key, t0.Add(time.Hour))
		if !strings.HasPrefix(p, "/files/") {
			t.Errorf("Path(%q) = %s", key, p)
		}
		// The server sees the decoded path.
		decoded := strings.NewReplacer("%20", " ", "%25", "%", "%C3%A9", "é").Replace(p)
		got, err := testSigner.Verify(decoded, t0)
		if err != nil || got != key {
			t.Errorf("Verify(%s) = %q, %v; want %q", decoded, got, err, key)
		}
	}
}

// The relative references of an HLS master playlist resolve, in a
// player, by replacing the last segment of the master's path: those paths
// must verify without further signing.
func TestSignerCoversRelativeReferences(t *testing.T) {
	master := testSigner.Path("tasks/t1/master.m3u8", t0.Add(time.Hour))
	base := master[:strings.LastIndex(master, "/")+1]
	for _, rel := range []string{"720p/index.m3u8", "720p/seg-00001.m4s", "poster.jpg"} {
		key, err := testSigner.Verify(base+rel, t0.Add(59*time.Minute))
		if err != nil || key != "tasks/t1/"+rel {
			t.Errorf("Verify(%s) = %q, %v; want tasks/t1/%s", base+rel, key, err, rel)
		}
	}
}

func TestSignerRefuses(t *testing.T) {
	exp := t0.Add(time.Hour)
	good := testSigner.Path("tasks/t1/master.m3u8", exp)
	parts := strings.SplitN(strings.TrimPrefix(good, "/files/"), "/", 3) // sig, expiry, key
	sig, expStr := parts[0], parts[1]
	other := storage.Signer{Secret: []byte("another secret, another server..")}
	tamperedSig := []byte(sig)
	tamperedSig[3] ^= 1
	tests := []struct {
		name string
		path string
		now  time.Time
		want error
	}{
		{"expired", good, exp.Add(time.Second), storage.ErrExpired},
		{"another task's prefix", "/files/" + sig + "/" + expStr + "/tasks/t2/master.m3u8", t0, storage.ErrBadSignature},
		{"a prefix that extends the task id", "/files/" + sig + "/" + expStr + "/tasks/t10/master.m3u8", t0, storage.ErrBadSignature},
		{"another top folder", "/files/" + sig + "/" + expStr + "/sources/t1/master.m3u8", t0, storage.ErrBadSignature},
		{"a later expiry", "/files/" + sig + "/" + "1900000000" + "/tasks/t1/master.m3u8", t0, storage.ErrBadSignature},
		{"an expiry with a leading zero", "/files/" + sig + "/0" + expStr + "/tasks/t1/master.m3u8", t0, storage.ErrBadSignature},
		{"a tampered signature", "/files/" + string(tamperedSig) + "/" + expStr + "/tasks/t1/master.m3u8", t0, storage.ErrBadSignature},
		{"another secret", other.Path("tasks/t1/master.m3u8", exp), t0, storage.ErrBadSignature},
		{"no secret", good, t0, storage.ErrBadSignature}, // checked with an empty Signer below
		{"dot dot out of the prefix", "/files/" + sig + "/" + expStr + "/tasks/t1/../t2/master.m3u8", t0, storage.ErrBadSignature},
		{"dot dot inside", "/files/" + sig + "/" + expStr + "/tasks/t1/720p/../master.m3u8", t0, storage.ErrBadSignature},
		{"a dot segment", "/files/" + sig + "/" + expStr + "/tasks/t1/./master.m3u8", t0, storage.ErrBadSignature},
		{"a double slash", "/files/" + sig + "/" + expStr + "/tasks/t1//master.m3u8", t0, storage.ErrBadSignature},
		{"a folder", "/files/" + sig + "/" + expStr + "/tasks/t1/720p/", t0, storage.ErrBadSignature},
		{"the prefix itself", "/files/" + sig + "/" + expStr + "/tasks/t1", t0, storage.ErrBadSignature},
		{"a hidden file", "/files/" + sig + "/" + expStr + "/tasks/t1/.tmp", t0, storage.ErrBadSignature},
		{"a backslash", "/files/" + sig + "/" + expStr + "/tasks/t1/..\\x", t0, storage.ErrBadSignature},
		{"no key", "/files/" + sig + "/" + expStr, t0, storage.ErrBadSignature},
		{"another route", "/tasks/" + sig + "/" + expStr + "/tasks/t1/master.m3u8", t0, storage.ErrBadSignature},
		{"empty", "", t0, storage.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner
			if tt.name == "no secret" {
				s = storage.Signer{}
			}
			key, err := s.Verify(tt.path, tt.now)
			if !errors.Is(err, tt.want) || key != "" {
				t.Errorf("Verify(%s) = %q, %v; want %v", tt.path, key, err, tt.want)
			}
		})
	}
}

// The signature is what links already handed out carry: recomputed here
// from its documented definition, so a change to it is a deliberate one.
func TestSignerFormat(t *testing.T) {
	m := hmac.New(sha256.New, testSigner.Secret)
	m.Write([]byte("ittybit-files-v1\x00tasks/t1/\x001800000000"))
	want := "/files/" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "/1800000000/tasks/t1/720p/index.m3u8"
	if got := testSigner.Path("tasks/t1/720p/index.m3u8", t0); got != want {
		t.Errorf("Path = %s, want %s", got, want)
	}
}
