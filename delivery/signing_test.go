package delivery

import (
	"net/http"
	"strconv"
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
