package hsm

import (
	"encoding/json"
	"errors"

	"github.com/keyward/keyward/internal/keys"
)

// handleV1 is what the vault stores (sealed) for an HSM key: the token's
// identity, the CKA_ID and the public key. Never private material.
type handleV1 struct {
	V      int     `json:"v"`
	Serial string  `json:"tokenSerial"`
	Label  string  `json:"tokenLabel"`
	ID     string  `json:"id"`
	Public pubWire `json:"public"`
	// Backup is the private key wrapped by the token's backup key
	// (C_WrapKey, CKM_AES_KEY_WRAP_PAD; backup.go): usable only inside
	// this HSM, so a key backup can be restored after a purge.
	Backup []byte `json:"backup,omitempty"`
	// Usage and Exportable recreate the object's flags on restore.
	Usage      uint16 `json:"usage,omitempty"`
	Exportable bool   `json:"exportable,omitempty"`
}

// pubWire is the public JWK as a handle stores it.
type pubWire struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	N   []byte `json:"n,omitempty"`
	E   []byte `json:"e,omitempty"`
	X   []byte `json:"x,omitempty"`
	Y   []byte `json:"y,omitempty"`
}

func (p pubWire) jwk() keys.JWK {
	return keys.JWK{Kty: p.Kty, Crv: p.Crv, N: p.N, E: p.E, X: p.X, Y: p.Y}
}

func makeHandle(serial, label, id string, pub keys.JWK, spec keys.Spec, backup []byte) ([]byte, error) {
	return json.Marshal(handleV1{V: 1, Serial: serial, Label: label, ID: id,
		Public: pubWire{Kty: pub.Kty, Crv: pub.Crv, N: pub.N, E: pub.E, X: pub.X, Y: pub.Y},
		Backup: backup, Usage: uint16(spec.Usage), Exportable: spec.Exportable})
}

// ParseHandle returns the CKA_ID and token serial a handle names.
func ParseHandle(handle []byte) (id, tokenSerial string, err error) {
	var hv handleV1
	if err := json.Unmarshal(handle, &hv); err != nil || hv.V != 1 || hv.ID == "" {
		return "", "", errors.New("hsm: not an HSM key handle")
	}
	return hv.ID, hv.Serial, nil
}

func parseHandleInto(handle []byte, hv *handleV1) error {
	if err := json.Unmarshal(handle, hv); err != nil || hv.V != 1 || hv.ID == "" {
		return errors.New("hsm: not an HSM key handle")
	}
	return nil
}
