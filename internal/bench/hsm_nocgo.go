//go:build !cgo

package bench

import "errors"

// hsmRaw needs cgo (PKCS#11 is a C library); without it the HSM
// operations fail at setup with errNoCgo.
type hsmRaw struct{}

var errNoCgo = errors.New("the HSM operations need a keyward built with cgo (CGO_ENABLED=1): PKCS#11 is a C interface")

func newHSMRaw(*DevHSM, string, bool, []byte) *hsmRaw { return &hsmRaw{} }
func (*hsmRaw) init() error                           { return errNoCgo }
func (*hsmRaw) each() func() error                    { return func() error { return errNoCgo } }
func (*hsmRaw) close()                                {}
