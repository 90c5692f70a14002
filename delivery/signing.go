package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

const secretPrefix = "whsec_"

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

// signatureHeader signs with every secret in force (two during a rotation's
// grace period) in the endpoint's scheme and joins the signatures with
// spaces, as Standard Webhooks receivers expect: any one of them verifying is
// enough.
func signatureHeader(scheme string, secrets []string, msgID string, timestamp time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, timestamp, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
