// Package vault is Keyward's domain: vaults and the objects in them
// (secrets, keys, certificates), their versions, attributes, soft delete,
// recovery, purge, backup and restore. Certificates themselves (policies,
// issuance, renewal) are internal/certificates, which keeps them in this
// package's versioned-object store (store.go).
//
// It knows nothing about HTTP or SQL: it reads and writes through the
// barrier (which seals every value) and reports failures as *Error with a
// Kind that the api package maps to Azure's wire errors. Time comes from an
// injected clock.
//
// Storage layout, keys relative to the vault's barrier view (barrier.Vault):
//
//	{c}/n/{name}            live object: original name, latest version
//	{c}/d/{name}            soft-deleted object: deletion and purge dates
//	{c}/v/{name}/{version}  one version: attributes, tags, payload
//	q/{purgeTime}/{c}/{name} purge queue, ordered by due time
//
// where {c} is "s", "k" or "c" and {name} is lower-cased (names are
// case-insensitive in Azure Key Vault).
package vault

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"time"
)

// ObjectType is the collection an object lives in, named as in URLs.
type ObjectType string

const (
	Secrets      ObjectType = "secrets"
	Keys         ObjectType = "keys"
	Certificates ObjectType = "certificates"
)

func (t ObjectType) coll() string {
	switch t {
	case Secrets:
		return "s"
	case Keys:
		return "k"
	case Certificates:
		return "c"
	}
	panic("vault: unknown object type " + string(t))
}

// collType is the ObjectType whose coll() is c ("" for none).
func collType(c string) ObjectType {
	switch c {
	case "s":
		return Secrets
	case "k":
		return Keys
	case "c":
		return Certificates
	}
	return ""
}

func (t ObjectType) singular() string {
	switch t {
	case Secrets:
		return "secret"
	case Keys:
		return "key"
	}
	return "certificate"
}

func (t ObjectType) title() string {
	s := t.singular()
	return strings.ToUpper(s[:1]) + s[1:]
}

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// ValidName reports whether name is a valid object name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidVersion reports whether v looks like a version identifier.
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

func checkName(t ObjectType, name string) error {
	if !ValidName(name) {
		return badParameter("The request URI contains an invalid name: %s", clip(name))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 130 {
		s = s[:130] + "…"
	}
	return s
}

// NewVersion returns a random 32-hex-digit version identifier.
func NewVersion() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Attributes are the attributes every object version has. Times are Unix
// seconds: Azure's wire format is integer seconds (AZURE-API.md §0.1).
type Attributes struct {
	Enabled   bool   `json:"enabled"`
	NotBefore *int64 `json:"nbf,omitempty"`
	Expires   *int64 `json:"exp,omitempty"`
	Created   int64  `json:"created"`
	Updated   int64  `json:"updated"`
	// Exportable applies to keys.
	Exportable *bool `json:"exportable,omitempty"`
}

// AttributesPatch is a partial update: nil fields are left as they are.
type AttributesPatch struct {
	Enabled    *bool
	NotBefore  *int64
	Expires    *int64
	Exportable *bool
}

func (a *Attributes) apply(p *AttributesPatch) {
	if p == nil {
		return
	}
	if p.Enabled != nil {
		a.Enabled = *p.Enabled
	}
	if p.NotBefore != nil {
		a.NotBefore = p.NotBefore
	}
	if p.Expires != nil {
		a.Expires = p.Expires
	}
	if p.Exportable != nil {
		a.Exportable = p.Exportable
	}
}

// Active reports whether now is inside [nbf, exp).
func (a *Attributes) Active(now time.Time) bool {
	return !a.NotYetValid(now) && !a.Expired(now)
}

// NotYetValid reports whether now is before nbf.
func (a *Attributes) NotYetValid(now time.Time) bool {
	return a.NotBefore != nil && now.Unix() < *a.NotBefore
}

// Expired reports whether now is at or after exp.
func (a *Attributes) Expired(now time.Time) bool {
	return a.Expires != nil && now.Unix() >= *a.Expires
}

// MaxTags is Azure's limit on tags per object.
const MaxTags = 15

func checkTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return badParameter("Too many tags: at most %d tags are allowed.", MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 {
			return badParameter("Tag names must be 1 to 512 characters long.")
		}
		if len(v) > 256 {
			return badParameter("Tag values must be at most 256 characters long.")
		}
	}
	return nil
}

func checkAttributes(p *AttributesPatch) error {
	if p != nil && p.NotBefore != nil && p.Expires != nil && *p.Expires <= *p.NotBefore {
		return badParameter("The expiration time (exp) must be later than the activation time (nbf).")
	}
	return nil
}

// DeletedInfo is what a soft-deleted object adds.
type DeletedInfo struct {
	DeletedDate        int64
	ScheduledPurgeDate int64
}

// checkRequest checks what a write of an object carries, in this order:
// its name (nameErr, the result of the name check that applies), its tags
// and its attributes. The first failure is the answer.
func checkRequest(nameErr error, tags map[string]string, attrs *AttributesPatch) error {
	if nameErr != nil {
		return nameErr
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	return checkAttributes(attrs)
}
