package main

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/keyward/keyward/internal/server"
)

// smtpFileConfig is the [smtp] section (docs/CERTIFICATES.md): the mail
// server certificate EmailContacts actions send through.
type smtpFileConfig struct {
	Addr         string `toml:"addr"`
	From         string `toml:"from"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	TLS          string `toml:"tls"`
	CAFile       string `toml:"ca_file"`
}

// acmeFileConfig is the [acme] section (docs/CERTIFICATES.md).
type acmeFileConfig struct {
	HTTP01Listen       string   `toml:"http01_listen"`
	HookURL            string   `toml:"hook_url"`
	HookSecretFile     string   `toml:"hook_secret_file"`
	HookChallenge      string   `toml:"hook_challenge"`
	AllowedDirectories []string `toml:"allowed_directories"`
	CAFile             string   `toml:"ca_file"`
}

// certificateConfig builds the SMTP and ACME settings from the file and
// KEYWARD_SMTP_* / KEYWARD_ACME_* variables. Secrets are read from files
// (or the environment), never from the config file itself.
func certificateConfig(fc *fileConfig, getenv func(string) string) (*server.SMTPConfig, server.ACMEConfig, error) {
	var smtp *server.SMTPConfig
	s := fc.SMTP
	if addr := cmp.Or(getenv("KEYWARD_SMTP_ADDR"), s.Addr); addr != "" {
		smtp = &server.SMTPConfig{Addr: addr, From: cmp.Or(getenv("KEYWARD_SMTP_FROM"), s.From),
			Username: cmp.Or(getenv("KEYWARD_SMTP_USERNAME"), s.Username), TLS: cmp.Or(getenv("KEYWARD_SMTP_TLS"), s.TLS)}
		pw, err := secretFrom(getenv("KEYWARD_SMTP_PASSWORD"), cmp.Or(getenv("KEYWARD_SMTP_PASSWORD_FILE"), s.PasswordFile))
		if err != nil {
			return nil, server.ACMEConfig{}, fmt.Errorf("smtp password: %w", err)
		}
		smtp.Password = pw
		if smtp.Roots, err = pool(s.CAFile); err != nil {
			return nil, server.ACMEConfig{}, fmt.Errorf("smtp ca_file: %w", err)
		}
	}
	a := fc.ACME
	acme := server.ACMEConfig{
		HTTP01Listen:       cmp.Or(getenv("KEYWARD_ACME_HTTP01_LISTEN"), a.HTTP01Listen),
		HookURL:            cmp.Or(getenv("KEYWARD_ACME_HOOK_URL"), a.HookURL),
		HookChallenge:      cmp.Or(getenv("KEYWARD_ACME_HOOK_CHALLENGE"), a.HookChallenge),
		AllowedDirectories: a.AllowedDirectories,
	}
	if v := getenv("KEYWARD_ACME_ALLOWED_DIRECTORIES"); v != "" {
		acme.AllowedDirectories = strings.Split(v, ",")
	}
	secret, err := secretFrom(getenv("KEYWARD_ACME_HOOK_SECRET"), cmp.Or(getenv("KEYWARD_ACME_HOOK_SECRET_FILE"), a.HookSecretFile))
	if err != nil {
		return nil, acme, fmt.Errorf("acme hook secret: %w", err)
	}
	acme.HookSecret = []byte(secret)
	if acme.Roots, err = pool(a.CAFile); err != nil {
		return nil, acme, fmt.Errorf("acme ca_file: %w", err)
	}
	return smtp, acme, nil
}

// secretFrom returns env if set, else the trimmed content of file.
func secretFrom(env, file string) (string, error) {
	if env != "" || file == "" {
		return env, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// pool is the system roots plus the PEM certificates in file ("" : nil,
// the system roots alone).
func pool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := x509.SystemCertPool()
	if err != nil {
		p = x509.NewCertPool()
	}
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return p, nil
}
