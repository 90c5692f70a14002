package delivery

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestSign(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		secret    string
		msgID     string
		timestamp int64
		body      string
		want      string
	}{
		{
			// The Standard Webhooks specification's test vector.
			name: "standard webhooks vector", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			msgID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: `{"test": 2432232314}`,
			want: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			name: "secret without prefix is the same key", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			msgID: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: `{"test": 2432232314}`,
			want: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := Sign(tt.secret, tt.msgID, time.Unix(tt.timestamp, 0), []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := Sign("whsec_not base64!", "msg", time.Now(), nil); err == nil {
		t.Error("a secret that is not base64 signed")
	}
}

// TestSignatureHeaderDuringRotation checks that a receiver holding either
// secret verifies a delivery signed during a rotation's grace period, with
// the Standard Webhooks library.
func TestSignatureHeaderDuringRotation(t *testing.T) {
	t.Parallel()

	oldSecret, newSecret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_bm90IHRoZSBvbGQgc2VjcmV0IGF0IGFsbA=="
	body := []byte(`{"id":"evt_1","object":"event"}`)
	now := time.Now()
	header, err := signatureHeader(SchemeHMAC, []string{newSecret, oldSecret}, "evt_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "evt_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", header)
	for _, secret := range []string{oldSecret, newSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("a receiver with one of the secrets cannot verify: %v", err)
		}
	}
	wh, _ := standardwebhooks.NewWebhook("whsec_b3RoZXIgc2VjcmV0IGVudGlyZWx5IGhlcmU=")
	if err := wh.Verify(body, h); err == nil {
		t.Error("a receiver with an unrelated secret verified the delivery")
	}
}

// TestEd25519Signature follows the Standard Webhooks text for asymmetric
// signatures with Go's crypto/ed25519, not with hookline's own code: the
// signed content is id "." timestamp "." body, the header entry is "v1a,"
// and the base64 of the Ed25519 signature, and the key is the 32-byte seed
// after "whsk_". During a rotation's grace both keys sign.
func TestEd25519Signature(t *testing.T) {
	t.Parallel()

	oldSeed, newSeed := make([]byte, ed25519.SeedSize), make([]byte, ed25519.SeedSize)
	for i := range newSeed {
		oldSeed[i], newSeed[i] = byte(i), byte(255-i)
	}
	oldKey, newKey := "whsk_"+base64.StdEncoding.EncodeToString(oldSeed), "whsk_"+base64.StdEncoding.EncodeToString(newSeed)
	body := []byte(`{"test": 2432232314}`)
	ts := time.Unix(1614265330, 0)
	header, err := signatureHeader(SchemeEd25519, []string{newKey, oldKey}, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + string(body))
	entries := strings.Split(header, " ")
	if len(entries) != 2 {
		t.Fatalf("header %q: want two space-separated signatures", header)
	}
	for i, seed := range [][]byte{newSeed, oldSeed} {
		sig, ok := strings.CutPrefix(entries[i], "v1a,")
		if !ok {
			t.Fatalf("signature %q is not v1a", entries[i])
		}
		raw, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			t.Fatal(err)
		}
		public := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		if !ed25519.Verify(public, content, raw) {
			t.Errorf("signature %d does not verify with its public key", i)
		}
		if ed25519.Verify(public, []byte("msg_other.1614265330."+string(body)), raw) {
			t.Errorf("signature %d verifies another message", i)
		}
	}
	if _, err := signatureHeader(SchemeEd25519, []string{"whsk_c2hvcnQ="}, "msg", ts, body); err == nil ||
		strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("a key that is not a 32-byte seed: %v, want an error without the key", err)
	}
}
