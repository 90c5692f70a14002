package delivery

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/events"
)

// Standard Webhooks' prefixes: a shared HMAC secret, an Ed25519 private key
// (hookline stores its 32-byte seed), an Ed25519 public key.
const (
	secretPrefix     = "whsec_"
	privateKeyPrefix = "whsk_"
	publicKeyPrefix  = "whpk_"
)

// Signature schemes of an endpoint: Standard Webhooks v1 (HMAC-SHA256 with a
// shared secret, the default) or v1a (Ed25519, verified with a public key).
const (
	SchemeHMAC    = "hmac"
	SchemeEd25519 = "ed25519"
)

// Sign returns the Standard Webhooks signature of one delivery attempt:
// "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)), where key is the
// base64 decoding of the secret after "whsec_".
func Sign(secret, msgID string, timestamp time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(key) == 0 {
		// The secret itself must not appear in the error.
		return "", errors.New("signing secret is not whsec_ followed by base64")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// newSigningKey returns a new signing secret of a scheme, to be sealed and
// stored, and what the merchant is shown: the secret itself for HMAC, which
// the receiver shares, and for Ed25519 only the public key, so that a leaked
// receiver configuration cannot forge a delivery.
func newSigningKey(scheme string) (stored, secret, publicKey string) {
	if scheme != SchemeEd25519 {
		s := events.NewWebhookSecret()
		return s, s, ""
	}
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed) // never fails (crypto/rand)
	public := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return privateKeyPrefix + base64.StdEncoding.EncodeToString(seed), "", publicKeyPrefix + base64.StdEncoding.EncodeToString(public)
}

// signEd25519 returns the Standard Webhooks asymmetric signature of one
// delivery attempt: "v1a," + base64(Ed25519(key, id "." timestamp "." body)),
// where key is the seed after "whsk_".
func signEd25519(privateKey, msgID string, timestamp time.Time, body []byte) (string, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(privateKey, privateKeyPrefix))
	if err != nil || len(seed) != ed25519.SeedSize {
		// The key itself must not appear in the error.
		return "", errors.New("signing key is not whsk_ followed by the base64 of a 32-byte Ed25519 seed")
	}
	content := make([]byte, 0, len(msgID)+len(body)+22)
	content = append(content, msgID...)
	content = append(content, '.')
	content = strconv.AppendInt(content, timestamp.Unix(), 10)
	content = append(content, '.')
	content = append(content, body...)
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.NewKeyFromSeed(seed), content)), nil
}

// signatureHeader signs with every secret in force (the current one, and
// during rotations' grace periods up to MaxPreviousSecrets previous ones) in
// the endpoint's scheme and joins the signatures with
// spaces, as Standard Webhooks receivers expect: any one of them verifying is
// enough.
func signatureHeader(scheme string, secrets []string, msgID string, timestamp time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	sign := Sign
	if scheme == SchemeEd25519 {
		sign = signEd25519
	}
	for _, s := range secrets {
		sig, err := sign(s, msgID, timestamp, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
