package events

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"

	"github.com/oklog/ulid/v2"
)

// Object id prefixes (contract §2).
const (
	PrefixAccount         = "acct"
	PrefixCheckout        = "chk"
	PrefixDelivery        = "dlv"
	PrefixEndpoint        = "we"
	PrefixEvent           = "evt"
	PrefixPaymentAttempt  = "pat"
	PrefixPayin           = "pay"
	secretPrefix          = "whsec_"
	testKeyPrefix         = "sk_test_"
	liveKeyPrefix         = "sk_live_"
	webhookSecretByteSize = 32
)

// NewID returns prefix_ULID. ULIDs sort by creation time, which is what makes
// id order the list order of every collection.
func NewID(prefix string) string {
	return prefix + "_" + ulid.Make().String()
}

// NewWebhookSecret returns a Standard Webhooks signing secret: whsec_ followed
// by the base64 of 32 random bytes.
func NewWebhookSecret() string {
	return secretPrefix + base64.StdEncoding.EncodeToString(randomBytes(webhookSecretByteSize))
}

func newAPIKey(livemode bool) string {
	prefix := testKeyPrefix
	if livemode {
		prefix = liveKeyPrefix
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return prefix + strings.ToLower(enc.EncodeToString(randomBytes(20)))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on supported platforms.
	_, _ = rand.Read(b)
	return b
}
