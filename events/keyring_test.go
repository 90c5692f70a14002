package events_test

import (
	"strings"
	"testing"

	"github.com/hookline/hookline/events"
)

func TestKeyring(t *testing.T) {
	t.Parallel()

	oldSpec := events.NewKeySpec("old")
	old, err := events.ParseKeyring(oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	secret := events.NewWebhookSecret()
	sealed := old.Seal("we_1", secret)
	if strings.Contains(sealed, secret) || !strings.HasPrefix(sealed, "v1:old:") {
		t.Fatalf("sealed value %q", sealed)
	}
	if got, err := old.Open("we_1", sealed); err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := old.Open("we_2", sealed); err == nil {
		t.Fatal("a value sealed for one row opened for another")
	}
	if got, err := old.Open("we_1", "whsec_plain"); err != nil || got != "whsec_plain" {
		t.Fatalf("a value from before encryption: %q, %v", got, err)
	}

	// Rotation: the new key seals, the old one still opens until re-encrypted.
	rotated, err := events.ParseKeyring(events.NewKeySpec("new") + "," + oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open("we_1", sealed); err != nil || got != secret {
		t.Fatalf("the rotated keyring cannot open the old value: %v", err)
	}
	if rotated.Current(sealed) || !rotated.Current(rotated.Seal("we_1", secret)) {
		t.Fatal("Current does not tell the old key from the new")
	}
	fresh, _ := events.ParseKeyring(events.NewKeySpec("other"))
	if _, err := fresh.Open("we_1", sealed); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("opening with a missing key: %v", err)
	}

	for _, bad := range []string{"", "nokey", "k1:", "k1:c2hvcnQ=", "k1:" + strings.Repeat("A", 44) + ",k1:" + strings.Repeat("A", 44)} {
		if _, err := events.ParseKeyring(bad); err == nil {
			t.Errorf("ParseKeyring(%q) accepted", bad)
		}
	}
}
