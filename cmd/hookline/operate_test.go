package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestOperatorCommands runs the operator's commands as an operator would,
// through the command line, on a failed delivery.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, url := migratedPool(t)
	_, endpointID := seedDelivery(t, pool, "http://127.0.0.1:9/down", defaultRetrySchedule)
	var deliveryID string
	if err := pool.QueryRow(ctx, `update deliveries set status = 'failed', attempt_count = 13, last_status_code = 503
		returning id`).Scan(&deliveryID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `update webhook_endpoints set failing_since = now() - interval '5 hours'`); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, func(k string) string {
			return map[string]string{"DATABASE_URL": url, "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}[k]
		}, &out, io.Discard)
		return out.String(), err
	}

	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of the output
		wantErr string   // substring of the error, "" for none
	}{
		{"list failed deliveries", []string{"deliveries", "list", "--status", "failed"}, []string{"DELIVERY", deliveryID, "checkout.created", "503"}, ""},
		{"list failing endpoints", []string{"endpoints", "list", "--failing"}, []string{"ENDPOINT", endpointID, "enabled"}, ""},
		{"dry-run recovery", []string{"deliveries", "recover", "--endpoint", endpointID, "--since", "6h", "--dry-run"}, []string{`{"matched":1,"retried":0}`}, ""},
		{"window too wide", []string{"deliveries", "recover", "--endpoint", endpointID, "--since", "400h"}, nil, "--since"},
		{"bad --since", []string{"deliveries", "recover", "--endpoint", endpointID, "--since", "yesterday"}, nil, "--since"},
		{"unknown endpoint", []string{"deliveries", "recover", "--endpoint", "we_nope", "--since", "1h"}, nil, "no such endpoint"},
		{"recovery", []string{"deliveries", "recover", "--endpoint", endpointID, "--since", "6h"}, []string{`{"matched":1,"retried":1}`}, ""},
		{"retry", []string{"deliveries", "retry", deliveryID}, []string{`{"retried":1}`}, ""},
		{"retry an unknown delivery", []string{"deliveries", "retry", deliveryID, "dlv_nope"}, []string{`"retried":1`, `"not_found":["dlv_nope"]`}, "dlv_nope"},
		{"enable", []string{"endpoints", "enable", endpointID}, []string{`"status":"enabled"`}, ""},
		{"enable an unknown endpoint", []string{"endpoints", "enable", "we_nope"}, nil, "no such endpoint"},
	}
	for _, tt := range tests { // in order: the recovery changes what follows
		out, err := cli(tt.args...)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Fatalf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%s: output lacks %q:\n%s", tt.name, w, out)
			}
		}
	}
	var jobs int
	if err := pool.QueryRow(ctx, `select count(*) from river_job where kind in ('recover_deliveries', 'deliver')`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	// The seeded delivery's own job, the recovered delivery's job and the job
	// of the recovery's next (empty) batch, and two manual retries.
	if jobs != 5 {
		t.Fatalf("%d delivery and recovery jobs, want 5", jobs)
	}
}
