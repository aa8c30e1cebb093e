package hsm

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SoftToken is a SoftHSM2 token a dev server (or a test) made for itself.
// Conf is the softhsm2.conf the process's SoftHSM2 library reads.
type SoftToken struct {
	Module  string `json:"module"`
	Conf    string `json:"softhsm2_conf"`
	Label   string `json:"token_label"`
	UserPIN string `json:"user_pin"`
	SOPIN   string `json:"so_pin"`
}

// Config returns the Config that opens the token.
func (t SoftToken) Config() Config {
	return Config{Module: t.Module, TokenLabel: t.Label, PIN: t.UserPIN}
}

// PrepareSoftHSMConf makes sure the process's SoftHSM2 library will read a
// configuration whose token directory is under dir, unless SOFTHSM2_CONF
// is already set (then that file is used). It returns the configuration's
// path. It must run before the library is first initialized in the
// process; a library already initialized keeps its first configuration.
func PrepareSoftHSMConf(dir string) (string, error) {
	if c := os.Getenv("SOFTHSM2_CONF"); c != "" {
		return c, nil
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return "", err
	}
	return conf, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EnsureSoftToken returns the SoftHSM2 token recorded in dir/token.json,
// or creates one (a token in the library's first free slot, random PINs)
// and records it there (mode 0600: it holds the PINs; dev only).
func EnsureSoftToken(module, dir string) (SoftToken, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SoftToken{}, err
	}
	conf, err := PrepareSoftHSMConf(dir)
	if err != nil {
		return SoftToken{}, err
	}
	rec := filepath.Join(dir, "token.json")
	if b, err := os.ReadFile(rec); err == nil {
		var t SoftToken
		if err := json.Unmarshal(b, &t); err != nil || t.Label == "" {
			return SoftToken{}, fmt.Errorf("hsm: %s is not a token record", rec)
		}
		t.Module, t.Conf = module, conf
		if _, err := module2(module); err != nil {
			return SoftToken{}, err
		}
		if found, err := tokenExists(module, t.Label); err != nil || found {
			return t, err
		}
		// The library reads another token directory (SOFTHSM2_CONF or a
		// configuration initialized first in this process): make the
		// token there.
	} else if !errors.Is(err, os.ErrNotExist) {
		return SoftToken{}, err
	}
	t := SoftToken{Module: module, Conf: conf, Label: "keyward-dev-" + randHex(4), UserPIN: randHex(8), SOPIN: randHex(8)}
	if err := initToken(module, t.Label, t.SOPIN, t.UserPIN); err != nil {
		return SoftToken{}, err
	}
	b, _ := json.Marshal(t)
	if err := os.WriteFile(rec, b, 0o600); err != nil {
		return SoftToken{}, err
	}
	return t, nil
}
