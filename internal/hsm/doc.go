// Package hsm is the PKCS#11 key protector: RSA-HSM, EC-HSM and oct-HSM
// keys whose private parts live in a PKCS#11 token (any vendor's; SoftHSM2
// in tests and the dev server), marked sensitive and non-extractable, with
// every private-key operation running inside the token.
//
// An [HSM] implements [keys.Protector]. Its handles hold only the token's
// identity (serial number and label), the object's CKA_ID (the ASCII bytes
// of the key version ID, DESIGN.md dev-server contract) and the public JWK.
//
// Mechanisms (docs/HSM.md; ../shared/CRYPTO.md §1):
//   - RS*: CKM_RSA_PKCS over DigestInfo‖digest; PS*: CKM_RSA_PKCS_PSS with a
//     salt as long as the hash; ES*: CKM_ECDSA (r‖s, low-S for ES256K).
//   - RSA1_5: CKM_RSA_PKCS; RSA-OAEP: CKM_RSA_PKCS_OAEP (SHA-1);
//     RSA-OAEP-256: CKM_RSA_PKCS_OAEP (SHA-256) when the token accepts the
//     parameters, else (SoftHSM2 2.6.1) CKM_RSA_X_509 in the token and a
//     constant-time OAEP decoding here (the plaintext leaves the token
//     anyway). The capability is probed once at Open.
//   - Public-key operations (verify, encrypt, wrapKey) run in Go on the
//     public key, with the results of the software path.
//
// The PKCS#11 backend needs cgo (it dlopens the module); a build without
// cgo has [Open] return an error.
package hsm

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Config selects the token. Module, TokenLabel and a PIN are required.
type Config struct {
	// Module is the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel finds the token (slot IDs change; labels don't).
	TokenLabel string
	// PIN is the user PIN; PINFile, when PIN is empty, is a file holding it
	// (trailing newline ignored).
	PIN     string
	PINFile string
	// Sessions bounds the session pool (concurrent token operations);
	// 0 means 8.
	Sessions int
}

// DefaultSoftHSMModule is where Debian's softhsm2 package installs its
// PKCS#11 library.
const DefaultSoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// ErrNotConfigured is returned by Open for an empty configuration.
var ErrNotConfigured = errors.New("hsm: no PKCS#11 module configured")

// pin returns the configured PIN, reading PINFile if needed.
func (c Config) pin() (string, error) {
	if c.PIN != "" {
		return c.PIN, nil
	}
	if c.PINFile == "" {
		return "", errors.New("hsm: hsm.pin_file (or the PIN) is required")
	}
	b, err := os.ReadFile(c.PINFile)
	if err != nil {
		return "", fmt.Errorf("hsm: reading the PIN file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Validate checks the configuration without opening the module.
func (c Config) Validate() error {
	switch {
	case c.Module == "":
		return ErrNotConfigured
	case c.TokenLabel == "":
		return errors.New("hsm: hsm.token_label is required with hsm.module")
	case c.PIN == "" && c.PINFile == "":
		return errors.New("hsm: hsm.pin_file is required with hsm.module")
	case c.Sessions < 0:
		return errors.New("hsm: hsm.sessions must not be negative")
	}
	return nil
}
