//go:build !cgo

package hsm

import (
	"context"
	"errors"

	"github.com/keyward/keyward/internal/keys"
)

// HSM is unavailable in a build without cgo.
type HSM struct{ keys.Protector }

var errNoCgo = errors.New("hsm: this Keyward was built without cgo, which PKCS#11 needs (CGO_ENABLED=1)")

// Open always fails without cgo.
func Open(Config) (*HSM, error) { return nil, errNoCgo }

func (*HSM) Close() error                          { return nil }
func (*HSM) TokenLabel() string                    { return "" }
func (*HSM) TokenSerial() string                   { return "" }
func (*HSM) Destroy(context.Context, []byte) error { return errNoCgo }

func module2(string) (any, error)                    { return nil, errNoCgo }
func tokenExists(string, string) (bool, error)       { return false, errNoCgo }
func initToken(string, string, string, string) error { return errNoCgo }

func (*HSM) SupportsOAEP256() bool { return false }

// SealKey is unavailable without cgo.
type SealKey struct{}

func (*HSM) SealKey(context.Context, string) (*SealKey, error)          { return nil, errNoCgo }
func (*SealKey) Name() string                                           { return "" }
func (*SealKey) Wrap(context.Context, []byte, []byte) ([]byte, error)   { return nil, errNoCgo }
func (*SealKey) Unwrap(context.Context, []byte, []byte) ([]byte, error) { return nil, errNoCgo }

const SealKeyID = "keyward-seal-1"
