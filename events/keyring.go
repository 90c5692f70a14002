package events

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealedPrefix marks a sealed value; anything else in a secret column is a
// value written before encryption, read as it is until re-encrypted.
const sealedPrefix = "v1:"

// Keyring seals the signing secrets hookline must be able to read back
// (account and endpoint secrets: it signs with them) with AES-256-GCM. The
// first key seals; every key opens, so that keys can be rotated: add the new
// key first, re-encrypt, then drop the old one.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ParseKeyring reads HOOKLINE_ENCRYPTION_KEY's format: comma-separated
// id:base64 entries, each key 32 bytes, the first the one that seals.
func ParseKeyring(spec string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for _, entry := range strings.Split(spec, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok || id == "" || strings.ContainsAny(id, ": ") {
			return nil, errors.New("each key must be id:base64, such as k1:" + strings.Repeat("A", 43) + "=")
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("key %s must be 32 bytes, base64-encoded", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("key id %s appears twice", id)
		}
		k.aeads[id] = aead
		if k.current == "" {
			k.current = id
		}
	}
	return k, nil
}

// NewKeySpec returns a fresh single-key HOOKLINE_ENCRYPTION_KEY value.
func NewKeySpec(id string) string {
	return id + ":" + base64.StdEncoding.EncodeToString(randomBytes(32))
}

// Seal encrypts a secret for the row named by owner (such as "we_…"): the
// owner is authenticated with it, so a sealed value copied to another row
// does not open.
func (k *Keyring) Seal(owner, secret string) string {
	aead := k.aeads[k.current]
	nonce := randomBytes(aead.NonceSize())
	sealed := aead.Seal(nonce, nonce, []byte(secret), []byte(owner))
	return sealedPrefix + k.current + ":" + base64.StdEncoding.EncodeToString(sealed)
}

// Open decrypts what Seal made for owner. The error never contains the
// value or the key.
func (k *Keyring) Open(owner, stored string) (string, error) {
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	id, b64, _ := strings.Cut(rest, ":")
	aead, ok := k.aeads[id]
	if !ok {
		return "", fmt.Errorf("secret of %s is sealed with key %s, which HOOKLINE_ENCRYPTION_KEY does not hold", owner, id)
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sealed) < aead.NonceSize() {
		return "", fmt.Errorf("secret of %s is not a sealed value", owner)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(owner))
	if err != nil {
		return "", fmt.Errorf("secret of %s does not open with key %s", owner, id)
	}
	return string(plain), nil
}

// Current reports whether a stored value is sealed with the sealing key, that
// is, needs no re-encryption.
func (k *Keyring) Current(stored string) bool {
	return strings.HasPrefix(stored, sealedPrefix+k.current+":")
}
