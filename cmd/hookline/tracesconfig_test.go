package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pemFiles writes a self-signed certificate and its key as PEM files in a
// temporary directory, and returns their paths.
func pemFiles(t *testing.T) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// The variables the SDK reads itself are checked at start like hookline's
// own: a value the SDK would ignore (and log, header values included) stops
// serve with a message naming the variable, never quoting a secret (a
// header's value, the endpoint's credentials). Valid values pass.
func TestTracesConfigChecksTheSDKsVariables(t *testing.T) {
	t.Parallel()

	cert, key := pemFiles(t)
	const secret = "s3cr3t-api-key"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // the variable the error must name; "" for none
	}{
		{"valid values", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "1000", "OTEL_BSP_EXPORT_TIMEOUT": "30000", "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
			"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512", "OTEL_EXPORTER_OTLP_TIMEOUT": "10000", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
			"OTEL_EXPORTER_OTLP_HEADERS": "api-key=" + secret + ", X-Tenant = a%20b", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": cert,
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": key, "OTEL_SDK_DISABLED": "false",
			"OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}, ""},
		{"SDK disabled by yes", map[string]string{"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"},
		{"a queue of no span", map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"},
		{"a delay in seconds", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "5s"}, "OTEL_BSP_SCHEDULE_DELAY"},
		{"a negative export timeout", map[string]string{"OTEL_BSP_EXPORT_TIMEOUT": "-1"}, "OTEL_BSP_EXPORT_TIMEOUT"},
		{"a batch size in words", map[string]string{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "many"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"},
		{"a timeout that is no number", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"},
		{"an unknown compression", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"},
		{"insecure as yes", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_INSECURE": "yes"}, "OTEL_EXPORTER_OTLP_TRACES_INSECURE"},
		{"a header without =", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization " + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"a header with a bad escape", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Basic%zz" + secret}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"},
		{"a header value with a newline", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=" + secret + "%0Ax: y"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"a header name with a space", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api key=" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"a header without a name", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "=" + secret}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"a trailing comma", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "api-key=" + secret + ","}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"a certificate file that is missing", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": cert + ".missing"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{"a certificate file that is a key", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": key}, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"},
		{"a client certificate without its key", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert}, "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		{"a client key that is a certificate", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": cert,
			"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": cert}, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"},
		{"an endpoint with credentials and a bad scheme", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://user:" + secret + "@collector/"},
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"an endpoint with credentials that does not parse", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://user:" + secret + "@[::1/"},
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"an endpoint with a token and no host", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http:///v1/traces?token=" + secret},
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := loadTracesConfig(func(k string) string { return env[k] })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Endpoint == "" {
					t.Fatal("tracing off")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

// A malformed OTEL_RESOURCE_ATTRIBUTES stops the start (the SDK would drop
// the pairs it cannot read), without quoting them.
func TestTracesConfigChecksTheResourceAttributes(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team")
	_, err := newTracerProvider(context.Background(), tracesConfig{Endpoint: "http://collector:4318/v1/traces"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES") || strings.Contains(err.Error(), "team") {
		t.Errorf("error %v, want one naming OTEL_RESOURCE_ATTRIBUTES, not quoting its pairs", err)
	}
}
