package pgserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CACertPath returns the PEM file of the CA that signed the server's
// certificate (for sslrootcert), or "" when the server runs without TLS.
func (s *Server) CACertPath() string { return s.caPath }

// sslQuery is the query string of DSNFor: TLS verified against our own CA
// when the server has one (it then accepts nothing else), else no TLS.
func (s *Server) sslQuery() string {
	if s.caPath == "" {
		return "sslmode=disable"
	}
	return url.Values{"sslmode": {"verify-full"}, "sslrootcert": {s.caPath}}.Encode()
}

// setupTLS generates a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, turns ssl on and makes pg_hba.conf accept TCP
// connections (ordinary and replication) only over TLS, so a client that
// connected at all is known to have used TLS. Called by Start between initdb
// and the first start.
func (s *Server) setupTLS() error {
	dir := filepath.Join(s.baseDir, "tls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	ca, caKey, caPath, err := writeCA(dir, "walmirror testenv CA")
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pgserver: server certificate: %w", err)
	}
	crt, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := writePEM(crt, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	// PostgreSQL refuses a key file others can read.
	if err := writePEM(keyPath, "EC PRIVATE KEY", kder, 0o600); err != nil {
		return err
	}
	if err := s.chownAll(dir); err != nil {
		return err
	}
	const hba = `# written by walmirror testenv (TLS only over TCP)
local   all             all                                     trust
local   replication     all                                     trust
hostssl all             all             127.0.0.1/32            scram-sha-256
hostssl replication     all             127.0.0.1/32            scram-sha-256
`
	if err := os.WriteFile(filepath.Join(s.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	s.settings["ssl"] = "on"
	s.settings["ssl_cert_file"] = crt
	s.settings["ssl_key_file"] = keyPath
	s.caPath = caPath
	return nil
}

// NewCA writes the certificate of a fresh, self-signed CA (one that signed
// nothing any test server uses) to dir/ca.crt and returns the path: the
// "wrong CA" a client must refuse.
func NewCA(dir string) (string, error) {
	_, _, path, err := writeCA(dir, "some other CA")
	return path, err
}

// writeCA generates an ECDSA CA and writes its certificate to dir/ca.crt.
func writeCA(dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pgserver: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pgserver: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pgserver: %w", err)
	}
	path := filepath.Join(dir, "ca.crt")
	if err := writePEM(path, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, "", err
	}
	return cert, key, path, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
