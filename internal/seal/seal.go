// Package seal seals secrets (the S3 secret access keys of tenant
// connections) with AES-256-GCM before they enter the Raft log, so that
// the log, its snapshots and their backups never hold them in clear.
//
// A sealed value is
//
//	version (1 byte, 1) | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag
//
// where the key id is the first 4 bytes of the SHA-256 of the key that
// sealed it, and the nonce is random. Each value is bound to associated
// data (the id of the object the secret belongs to), so a sealed value
// copied to another object does not open there.
package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// version is the format version Seal writes and Open reads.
const version = 1

const (
	keySize   = 32 // AES-256
	idSize    = 4
	nonceSize = 12
	tagSize   = 16
	// headerSize is what precedes the ciphertext.
	headerSize = 1 + idSize + nonceSize
)

// keyForms says what Parse and ReadFile accept, for their errors.
const keyForms = "accepted: 32 bytes as standard base64 (44 characters, or 43 without padding) or as 64 hex digits"

// Sealer seals with its first key and opens with any of its keys (key
// rotation: put the new key first, keep the old ones until every sealed
// value was sealed again). It is safe for concurrent use. Printing a
// Sealer shows its key ids, never its keys.
type Sealer struct {
	keys []key // current first
}

// key is one key, ready to use.
type key struct {
	id   [idSize]byte
	aead cipher.AEAD
}

// Parse reads keys: a comma-separated list of keys, each 32 bytes as
// standard base64 (44 characters with padding, or 43 without) or as 64 hex
// digits. Whitespace around items is ignored; the first key seals. An
// empty list, an empty item, a key of the wrong length or encoding, or the
// same key twice is an error that names the item's position (1-based) and
// never echoes key material.
func Parse(keys string) (*Sealer, error) {
	if strings.TrimSpace(keys) == "" {
		return nil, errors.New("no keys: " + keyForms + ", separated by commas")
	}
	var items []item
	for i, s := range strings.Split(keys, ",") {
		items = append(items, item{name: "key " + strconv.Itoa(i+1), text: strings.TrimSpace(s)})
	}
	return newSealer(items)
}

// ReadFile reads keys from the file at path: one key per line, in a form
// Parse accepts; blank lines and lines starting with # are ignored, and
// the first key seals. It refuses a file that group or others may read
// (mode & 0o077 != 0), saying to chmod 600 it. Errors name the line, never
// key material.
func ReadFile(path string) (*Sealer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read keys: %s is not a regular file; accepted: a file with one key per line", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read keys: %s has mode %#o, so group or others may read it; run chmod 600 %s", path, perm, path)
	}
	var items []item
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		items = append(items, item{name: fmt.Sprintf("%s line %d", path, n), text: line})
	}
	if err := sc.Err(); err != nil {
		// bufio's errors (a line too long) do not quote the input.
		return nil, fmt.Errorf("read keys from %s: %w", path, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("read keys: %s holds no keys: %s, one per line", path, keyForms)
	}
	return newSealer(items)
}

// Generate returns a new random key in the base64 form Parse reads.
func Generate() (string, error) {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate a key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// item is one key's text and where it came from ("key 2", "FILE line 7").
type item struct {
	name string
	text string
}

// newSealer decodes items, current first.
func newSealer(items []item) (*Sealer, error) {
	s := &Sealer{}
	seen := make(map[[keySize]byte]string, len(items))
	ids := make(map[[idSize]byte]string, len(items))
	for _, it := range items {
		raw, err := decodeKey(it.text)
		if err != nil {
			return nil, fmt.Errorf("%s %v", it.name, err)
		}
		if first, ok := seen[[keySize]byte(raw)]; ok {
			return nil, fmt.Errorf("%s is the same key as %s; list each key once", it.name, first)
		}
		seen[[keySize]byte(raw)] = it.name
		k, err := newKey(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", it.name, err)
		}
		if first, ok := ids[k.id]; ok {
			// Two keys in four billion share an id; Open could not tell
			// which one sealed a value.
			return nil, fmt.Errorf("%s has the same key id (%x) as %s; replace one with a newly generated key", it.name, k.id, first)
		}
		ids[k.id] = it.name
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// decodeKey decodes one key. Its errors complete a sentence that starts
// with the key's name and never quote the text: the decoders' own errors
// can (hex's names the bad character).
func decodeKey(text string) ([]byte, error) {
	var (
		raw []byte
		err error
	)
	switch len(text) {
	case 0:
		return nil, errors.New("is empty; " + keyForms)
	case base64.StdEncoding.EncodedLen(keySize):
		raw, err = base64.StdEncoding.Strict().DecodeString(text)
	case base64.RawStdEncoding.EncodedLen(keySize):
		raw, err = base64.RawStdEncoding.Strict().DecodeString(text)
	case hex.EncodedLen(keySize):
		raw, err = hex.DecodeString(text)
	default:
		return nil, fmt.Errorf("is %d characters long; %s", len(text), keyForms)
	}
	if err != nil || len(raw) != keySize {
		what := "base64"
		if len(text) == hex.EncodedLen(keySize) {
			what = "hex"
		}
		return nil, fmt.Errorf("is not valid %s; %s", what, keyForms)
	}
	return raw, nil
}

// newKey makes raw, a 32-byte key, ready to use.
func newKey(raw []byte) (key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(raw)
	return key{id: [idSize]byte(sum[:idSize]), aead: aead}, nil
}

// Seal seals plain with the current (first) key, bound to ad: associated
// data, such as the id of the object the secret belongs to, that Open must
// be given again. The result is version byte 1, the 4-byte key id, a
// 12-byte random nonce, then the GCM ciphertext and tag.
func (s *Sealer) Seal(plain, ad []byte) ([]byte, error) {
	if s == nil || len(s.keys) == 0 {
		return nil, errors.New("seal: the sealer has no keys; make one with seal.Parse or seal.ReadFile")
	}
	k := s.keys[0]
	out := make([]byte, headerSize, headerSize+len(plain)+tagSize)
	out[0] = version
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+idSize : headerSize]); err != nil {
		return nil, fmt.Errorf("seal: make a nonce: %w", err)
	}
	return k.aead.Seal(out, out[1+idSize:headerSize], plain, ad), nil
}

// Open opens what Seal wrote, with whichever of the keys sealed it, given
// the same ad. It fails for an unknown format version, a value sealed with
// a key this server does not have (naming that key's id), and a value that
// was damaged or bound to other associated data. Its errors never hold
// plaintext or key material.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	if s == nil || len(s.keys) == 0 {
		return nil, errors.New("open sealed value: the sealer has no keys; make one with seal.Parse or seal.ReadFile")
	}
	if len(sealed) == 0 {
		return nil, errors.New("open sealed value: it is empty")
	}
	if sealed[0] != version {
		return nil, fmt.Errorf("open sealed value: format version %d is unknown; this server reads version %d", sealed[0], version)
	}
	if len(sealed) < headerSize+tagSize {
		return nil, fmt.Errorf("open sealed value: it is %d bytes, shorter than the %d of a sealed empty value; it was cut short", len(sealed), headerSize+tagSize)
	}
	id := [idSize]byte(sealed[1 : 1+idSize])
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		plain, err := k.aead.Open(nil, sealed[1+idSize:headerSize], sealed[headerSize:], ad)
		if err != nil {
			return nil, fmt.Errorf("open sealed value (key %x): authentication failed: it was damaged, or it belongs to another object", id)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("open sealed value: it was sealed with key %x, which this server does not have (its keys: %s); add that key to the server's keys", id, strings.Join(s.KeyIDs(), ", "))
}

// Current reports whether sealed was sealed with the first (current) key,
// so that a caller can seal it again after a rotation. It does not check
// that sealed opens.
func (s *Sealer) Current(sealed []byte) bool {
	if s == nil || len(s.keys) == 0 || len(sealed) < headerSize+tagSize || sealed[0] != version {
		return false
	}
	return bytes.Equal(sealed[1:1+idSize], s.keys[0].id[:])
}

// KeyIDs returns the key ids in hex, current first: for logs, which must
// never show the keys.
func (s *Sealer) KeyIDs() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = hex.EncodeToString(k.id[:])
	}
	return ids
}

// String describes s by its key ids, so that printing a Sealer or a
// pointer to one (%v, %s) never shows key material.
func (s Sealer) String() string {
	return "seal.Sealer{keys: " + strings.Join(s.KeyIDs(), ", ") + "}"
}

// GoString describes s like String, for %#v.
func (s Sealer) GoString() string {
	return s.String()
}
