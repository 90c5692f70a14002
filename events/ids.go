package events

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"time"

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
	PrefixPortalSession   = "ps"
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

// FirstIDAt returns the smallest id of prefix minted at t (to the
// millisecond): every id minted before t sorts below it. Time ranges of a
// table are id ranges of its primary key or of an index ending in id, which
// spares each table an index on its creation time.
func FirstIDAt(prefix string, t time.Time) string {
	var id ulid.ULID
	// SetTime fails only for times after the year 10889.
	_ = id.SetTime(ulid.Timestamp(t))
	return prefix + "_" + id.String()
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
