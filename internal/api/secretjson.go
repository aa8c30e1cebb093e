package api

import (
	"slices"
	"strconv"

	"github.com/keyward/keyward/internal/audit"
)

// appendJSON appends json.Marshal(b) to dst, written by hand: a secret
// bundle is the answer to every secret get, and encoding/json's reflection
// was 3 % of its CPU. ok is false for what it does not write (an
// attestation in the attributes, which a secret never has); the caller
// then uses json.Marshal. TestSecretBundleJSON and FuzzSecretBundleJSON
// hold it to json.Marshal byte for byte.
func (b *secretBundle) appendJSON(dst []byte) (out []byte, ok bool) {
	if b.Attributes.Attestation != nil {
		return dst, false
	}
	dst = append(dst, '{')
	if b.Value != nil {
		dst = append(dst, `"value":`...)
		dst = audit.AppendJSONString(dst, *b.Value)
		dst = append(dst, ',')
	}
	dst = append(dst, `"id":`...)
	dst = audit.AppendJSONString(dst, b.ID)
	if b.ContentType != "" {
		dst = append(dst, `,"contentType":`...)
		dst = audit.AppendJSONString(dst, b.ContentType)
	}
	dst = append(dst, `,"attributes":`...)
	dst = b.Attributes.appendJSON(dst)
	if len(b.Tags) > 0 {
		dst = append(dst, `,"tags":{`...)
		keys := make([]string, 0, len(b.Tags))
		for k := range b.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = audit.AppendJSONString(dst, k)
			dst = append(dst, ':')
			dst = audit.AppendJSONString(dst, b.Tags[k])
		}
		dst = append(dst, '}')
	}
	if b.Kid != "" {
		dst = append(dst, `,"kid":`...)
		dst = audit.AppendJSONString(dst, b.Kid)
	}
	if b.Managed != nil {
		dst = append(dst, `,"managed":`...)
		dst = strconv.AppendBool(dst, *b.Managed)
	}
	if b.RecoveryID != "" {
		dst = append(dst, `,"recoveryId":`...)
		dst = audit.AppendJSONString(dst, b.RecoveryID)
	}
	if b.DeletedDate != nil {
		dst = append(dst, `,"deletedDate":`...)
		dst = strconv.AppendInt(dst, *b.DeletedDate, 10)
	}
	if b.ScheduledPurgeDate != nil {
		dst = append(dst, `,"scheduledPurgeDate":`...)
		dst = strconv.AppendInt(dst, *b.ScheduledPurgeDate, 10)
	}
	return append(dst, '}'), true
}

// sizeHint is about the length of b's JSON (exact for a plain secret
// whose strings need no escaping), for one allocation of the buffer.
func (b *secretBundle) sizeHint() int {
	n := 176 + len(b.ID) + len(b.ContentType) + len(b.Kid) + len(b.RecoveryID)
	if b.Value != nil {
		n += len(*b.Value)
	}
	for k, v := range b.Tags {
		n += len(k) + len(v) + 6
	}
	return n
}

// appendJSON appends json.Marshal(a) for attributes without an
// attestation.
func (a *attributesWire) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	sep := func() {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
	}
	if a.Enabled != nil {
		sep()
		dst = append(dst, `"enabled":`...)
		dst = strconv.AppendBool(dst, *a.Enabled)
	}
	for _, f := range [...]struct {
		name string
		v    *int64
	}{{`"nbf":`, a.NotBefore}, {`"exp":`, a.Expires}, {`"created":`, a.Created}, {`"updated":`, a.Updated}} {
		if f.v != nil {
			sep()
			dst = append(dst, f.name...)
			dst = strconv.AppendInt(dst, *f.v, 10)
		}
	}
	if a.RecoveryLevel != "" {
		sep()
		dst = append(dst, `"recoveryLevel":`...)
		dst = audit.AppendJSONString(dst, a.RecoveryLevel)
	}
	if a.RecoverableDays != nil {
		sep()
		dst = append(dst, `"recoverableDays":`...)
		dst = strconv.AppendInt(dst, int64(*a.RecoverableDays), 10)
	}
	if a.Exportable != nil {
		sep()
		dst = append(dst, `"exportable":`...)
		dst = strconv.AppendBool(dst, *a.Exportable)
	}
	if a.HSMPlatform != "" {
		sep()
		dst = append(dst, `"hsmPlatform":`...)
		dst = audit.AppendJSONString(dst, a.HSMPlatform)
	}
	return append(dst, '}')
}
