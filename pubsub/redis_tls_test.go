package pubsub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/pubsub"
	"github.com/ssecluster/ssecluster/pubsub/pubsubtest"
)

// writeTLSFiles makes a private CA and a certificate for 127.0.0.1 signed
// by it, in dir: ca.pem, srv.pem, srv.key.
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ssecluster test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	for name, b := range map[string]*pem.Block{
		"ca.pem":  {Type: "CERTIFICATE", Bytes: caDER},
		"srv.pem": {Type: "CERTIFICATE", Bytes: srvDER},
		"srv.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedisTLSAndACL: a rediss:// URL with an ACL user, trusting a private
// CA through CAFile, publishes and reads; without the CA, or with a wrong
// password, the broker cannot reach Redis.
func TestRedisTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	writeTLSFiles(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pubsubtest.StartRedis(t, pubsubtest.WithArgs(
		"--tls-port", fmt.Sprint(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "srv.pem"), "--tls-key-file", filepath.Join(dir, "srv.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no",
		"--user", "sse", "on", ">s3cret", "~*", "&*", "+@all",
	))
	url := fmt.Sprintf("rediss://sse:s3cret@127.0.0.1:%d/0", tlsPort)
	ca := filepath.Join(dir, "ca.pem")

	b := newRedis(t, pubsub.RedisConfig{URL: url, CAFile: ca, Partitions: 2})
	var l1 callLog
	runBroker(t, b, &l1)
	id := publishRetry(t, b, "t", "over-tls")
	waitFor(t, "delivery over TLS", func() bool { return l1.delivered([]pubsub.ID{id}) })

	for _, tc := range []struct {
		name, url, ca, want string
	}{
		{"no CA", url, "", "certificate"},
		{"wrong password", fmt.Sprintf("rediss://sse:nope@127.0.0.1:%d/0", tlsPort), ca, "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newRedis(t, pubsub.RedisConfig{URL: tc.url, CAFile: tc.ca, Partitions: 2})
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := b.Ping(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ping = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
