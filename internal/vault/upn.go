package vault

import (
	"crypto/x509"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// A certificate's user principal names are read where its secret's
// content types are named: the certificates package builds them, callers
// of the store (and tests of the wire) read them back.

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// OIDUPN is the Microsoft user principal name otherName of a SAN.
var OIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}

// ParseUPNs returns the UPN otherNames of a certificate's SAN extension.
func ParseUPNs(c *x509.Certificate) []string {
	var out []string
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		s := cryptobyte.String(ext.Value)
		var seq cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return nil
		}
		for !seq.Empty() {
			var gn cryptobyte.String
			var tag cbasn1.Tag
			if !seq.ReadAnyASN1(&gn, &tag) {
				return out
			}
			if tag != cbasn1.Tag(0).ContextSpecific().Constructed() {
				continue
			}
			var oid asn1.ObjectIdentifier
			var val, str cryptobyte.String
			if gn.ReadASN1ObjectIdentifier(&oid) && oid.Equal(OIDUPN) &&
				gn.ReadASN1(&val, cbasn1.Tag(0).ContextSpecific().Constructed()) && val.ReadASN1(&str, cbasn1.UTF8String) {
				out = append(out, string(str))
			}
		}
	}
	return out
}
