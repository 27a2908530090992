package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newKeyText returns a new key in base64, failing the test if it cannot.
func newKeyText(t *testing.T) string {
	t.Helper()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustParse parses keys or fails the test.
func mustParse(t *testing.T, keys string) *Sealer {
	t.Helper()
	s, err := Parse(keys)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

// keyID is the hex key id of the base64 key k.
func keyID(t *testing.T, k string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:4])
}

func TestRoundTrip(t *testing.T) {
	s := mustParse(t, newKeyText(t))
	for _, plain := range [][]byte{nil, []byte("x"), []byte("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), bytes.Repeat([]byte{0}, 4096)} {
		sealed, err := s.Seal(plain, []byte("con_01"))
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) > 4 && bytes.Contains(sealed, plain) {
			t.Errorf("sealed value holds the plaintext")
		}
		if got, want := len(sealed), 1+4+12+len(plain)+16; got != want {
			t.Errorf("sealed %d bytes: %d bytes, want %d", len(plain), got, want)
		}
		if sealed[0] != 1 {
			t.Errorf("version byte %d, want 1", sealed[0])
		}
		got, err := s.Open(sealed, []byte("con_01"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("Open = %q, want %q", got, plain)
		}
		if !s.Current(sealed) {
			t.Errorf("Current = false for a value just sealed")
		}
	}
}

func TestSealNonceIsRandom(t *testing.T) {
	s := mustParse(t, newKeyText(t))
	a, err := s.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Errorf("sealing the same value twice gave the same bytes")
	}
}

func TestOpenFails(t *testing.T) {
	k := newKeyText(t)
	s := mustParse(t, k)
	ad := []byte("con_01")
	sealed, err := s.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(sealed))
	}
	tests := []struct {
		name   string
		sealed []byte
		ad     []byte
		want   string
	}{
		{"other ad", sealed, []byte("con_02"), "damaged, or it belongs to another object"},
		{"no ad", sealed, nil, "damaged, or it belongs to another object"},
		{"nonce byte", with(func(b []byte) []byte { b[5] ^= 1; return b }), ad, "damaged"},
		{"ciphertext byte", with(func(b []byte) []byte { b[17] ^= 0x80; return b }), ad, "damaged"},
		{"tag byte", with(func(b []byte) []byte { b[len(b)-1]++; return b }), ad, "damaged"},
		{"key id byte", with(func(b []byte) []byte { b[1]++; return b }), ad, "sealed with key"},
		{"version", with(func(b []byte) []byte { b[0] = 2; return b }), ad, "format version 2 is unknown"},
		{"cut short", sealed[:20], ad, "cut short"},
		{"empty", nil, ad, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Open(tt.sealed, tt.ad)
			if err == nil {
				t.Fatalf("Open = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), k) {
				t.Errorf("error %q holds the plaintext or the key", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := newKeyText(t), newKeyText(t)
	old := mustParse(t, oldKey)
	ad := []byte("con_01")
	sealed, err := old.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustParse(t, newKey+", "+oldKey)
	if diff := cmp.Diff([]string{keyID(t, newKey), keyID(t, oldKey)}, rotated.KeyIDs()); diff != "" {
		t.Errorf("KeyIDs (-want +got):\n%s", diff)
	}
	if rotated.Current(sealed) {
		t.Errorf("Current = true for a value sealed with the old key")
	}
	got, err := rotated.Open(sealed, ad)
	if err != nil {
		t.Fatalf("Open with new,old: %v", err)
	}
	if string(got) != "secret" {
		t.Fatalf("Open = %q, want %q", got, "secret")
	}

	again, err := rotated.Seal(got, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.Current(again) {
		t.Errorf("Current = false for a value sealed again")
	}
	if !bytes.Equal(again[1:5], mustHex(t, keyID(t, newKey))) {
		t.Errorf("sealed again with key id %x, want %s", again[1:5], keyID(t, newKey))
	}
	// Once the old key is dropped, the value sealed again still opens.
	if got, err := mustParse(t, newKey).Open(again, ad); err != nil || string(got) != "secret" {
		t.Errorf("Open with the new key alone = %q, %v; want %q", got, err, "secret")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenUnknownKey(t *testing.T) {
	gone, kept := newKeyText(t), newKeyText(t)
	sealed, err := mustParse(t, gone).Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := mustParse(t, kept)
	if s.Current(sealed) {
		t.Errorf("Current = true for a value sealed with another key")
	}
	_, err = s.Open(sealed, nil)
	if err == nil {
		t.Fatal("Open succeeded with a key that did not seal the value")
	}
	msg := err.Error()
	for _, want := range []string{"sealed with key " + keyID(t, gone), "does not have", keyID(t, kept)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, gone) || strings.Contains(msg, kept) {
		t.Errorf("error %q holds a key", msg)
	}
}

func TestParseForms(t *testing.T) {
	k := newKeyText(t)
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{keyID(t, k)}
	for name, text := range map[string]string{
		"base64":       k,
		"raw base64":   strings.TrimRight(k, "="),
		"hex":          hex.EncodeToString(raw),
		"upper hex":    strings.ToUpper(hex.EncodeToString(raw)),
		"spaces":       " \t" + k + " \n",
		"one of three": k + "," + newKeyText(t) + " ,\t" + newKeyText(t),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(want, s.KeyIDs()[:1]); diff != "" {
				t.Errorf("first key id (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	k1, k2 := newKeyText(t), newKeyText(t)
	raw, err := base64.StdEncoding.DecodeString(k2)
	if err != nil {
		t.Fatal(err)
	}
	hexKey := hex.EncodeToString(raw)
	short := base64.StdEncoding.EncodeToString(raw[:16])
	long := base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), raw...))
	badBase64 := k2[:10] + "!" + k2[11:]
	badHex := hexKey[:20] + "zz" + hexKey[22:]
	tests := []struct {
		name  string
		keys  string
		want  string
		avoid []string // key material the error must not hold
	}{
		{"empty", "", "no keys", nil},
		{"blank", "  \t ", "no keys", nil},
		{"empty item", k1 + ",,", "key 2 is empty", []string{k1}},
		{"short", k1 + "," + short, "key 2 is 24 characters long", []string{k1, short}},
		{"long", long, "key 1 is 88 characters long", []string{long, k2}},
		{"bad base64", k1 + ", " + badBase64, "key 2 is not valid base64", []string{k1, badBase64, k2[:10], k2[11:]}},
		{"44 characters without padding", k2[:43] + "A", "key 1 is not valid base64", []string{k2[:43]}},
		{"bad hex", badHex, "key 1 is not valid hex", []string{badHex, hexKey[:20], hexKey[22:], "z"}},
		{"duplicate", k1 + "," + k2 + "," + k1, "key 3 is the same key as key 1", []string{k1, k2}},
		{"duplicate in another form", k2 + "," + hexKey, "key 2 is the same key as key 1", []string{k2, hexKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.keys)
			if err == nil {
				t.Fatalf("Parse = %v, want an error", s)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if tt.want != "no keys" && !strings.Contains(msg, "accepted") && !strings.Contains(msg, "each key once") {
				t.Errorf("error %q does not say what is accepted", msg)
			}
			for _, a := range tt.avoid {
				if strings.Contains(msg, a) {
					t.Errorf("error %q holds key material %q", msg, a)
				}
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	k1, k2 := newKeyText(t), newKeyText(t)
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode passes through the umask.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("comments and blank lines", func(t *testing.T) {
		p := write("keys", "# rotated 2026-05-01\n\n  "+k2+"  \n# old, drop after the reseal\n"+k1+"\n\n", 0o600)
		s, err := ReadFile(p)
		if err != nil {
			t.Fatalf("ReadFile: %v", err)
		}
		if diff := cmp.Diff([]string{keyID(t, k2), keyID(t, k1)}, s.KeyIDs()); diff != "" {
			t.Errorf("KeyIDs (-want +got):\n%s", diff)
		}
		sealed, err := s.Seal([]byte("secret"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !mustParse(t, k2).Current(sealed) {
			t.Errorf("ReadFile's sealer did not seal with the first key in the file")
		}
	})

	t.Run("group or others can read", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			p := write(fmt.Sprintf("keys-%o", mode), k1+"\n", mode)
			_, err := ReadFile(p)
			if err == nil {
				t.Fatalf("ReadFile accepted a file with mode %#o", mode)
			}
			msg := err.Error()
			for _, want := range []string{p, fmt.Sprintf("%#o", mode), "chmod 600"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, k1) {
				t.Errorf("error %q holds the key", msg)
			}
		}
	})

	t.Run("owner only", func(t *testing.T) {
		if _, err := ReadFile(write("keys-400", k1+"\n", 0o400)); err != nil {
			t.Errorf("ReadFile refused mode 0400: %v", err)
		}
	})

	errTests := []struct {
		name, text, want string
	}{
		{"no keys", "# nothing yet\n\n", "holds no keys"},
		{"bad key", "# keys\n" + k1 + "\n\n" + k1[:40] + "\n", "line 4 is 40 characters long"},
		{"duplicate", k1 + "\n" + k2 + "\n" + k1 + "\n", "line 3 is the same key as"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-"), tt.text, 0o600)
			_, err := ReadFile(p)
			if err == nil {
				t.Fatal("ReadFile succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, p) {
				t.Errorf("error %q does not say %q about %s", msg, tt.want, p)
			}
			if strings.Contains(msg, k1) || strings.Contains(msg, k1[:40]) || strings.Contains(msg, k2) {
				t.Errorf("error %q holds key material", msg)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		if _, err := ReadFile(filepath.Join(dir, "nope")); err == nil {
			t.Error("ReadFile of a missing file succeeded")
		}
	})
	t.Run("folder", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile of a folder: %v, want it is not a regular file", err)
		}
	})
}

func TestGenerate(t *testing.T) {
	a, b := newKeyText(t), newKeyText(t)
	if a == b {
		t.Fatal("Generate returned the same key twice")
	}
	if len(a) != 44 {
		t.Errorf("Generate = %d characters, want 44", len(a))
	}
	s := mustParse(t, a+","+b)
	if got := len(s.KeyIDs()); got != 2 {
		t.Errorf("%d keys, want 2", got)
	}
}

func TestNoKeyMaterialInPrint(t *testing.T) {
	k := newKeyText(t)
	s := mustParse(t, k)
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		for _, v := range []any{s, *s} {
			out := fmt.Sprintf(format, v)
			// %x hex-encodes what String returns.
			if format != "%x" && !strings.Contains(out, keyID(t, k)) {
				t.Errorf("Sprintf(%q) = %q, want the key id", format, out)
			}
			if strings.Contains(out, k) || strings.Contains(out, hex.EncodeToString(raw)) || strings.Contains(out, string(raw)) {
				t.Errorf("Sprintf(%q) shows the key", format)
			}
		}
	}
}

func TestZeroSealer(t *testing.T) {
	for _, s := range []*Sealer{nil, {}} {
		if _, err := s.Seal([]byte("x"), nil); err == nil {
			t.Errorf("Seal with %v succeeded", s)
		}
		if _, err := s.Open(make([]byte, 64), nil); err == nil {
			t.Errorf("Open with %v succeeded", s)
		}
		if s.Current(make([]byte, 64)) {
			t.Errorf("Current with %v = true", s)
		}
		if len(s.KeyIDs()) != 0 {
			t.Errorf("KeyIDs with %v = %v", s, s.KeyIDs())
		}
	}
}
