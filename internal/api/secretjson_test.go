package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func checkSecretBundleJSON(t *testing.T, b *secretBundle) {
	t.Helper()
	want, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := b.appendJSON(nil)
	if !ok {
		if b.Attributes.Attestation == nil {
			t.Fatalf("refused %+v", b)
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendJSON:  %s\njson.Marshal: %s", got, want)
	}
}

// fillAll sets every field reachable from v (pointers allocated) to a
// non-zero value, so that a field added to the wire types later and not
// to appendJSON fails the test.
func fillAll(v reflect.Value, s string, n int64) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() == reflect.TypeOf(keyAttestationWire{}) {
			return // appendJSON refuses attestations (checked on its own)
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(v.Elem(), s, n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() || v.Type().Field(i).Anonymous {
				fillAll(v.Field(i), s, n+int64(i))
			}
		}
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(n)
	case reflect.Map:
		v.Set(reflect.ValueOf(map[string]string{s: s, "b": "<&>", "a": "\u2028\x00"}))
	}
}

// The hand-written secret bundle is json.Marshal's, byte for byte.
func TestSecretBundleJSON(t *testing.T) {
	var full secretBundle
	fillAll(reflect.ValueOf(&full).Elem(), "x<\"é\xff", -7)
	checkSecretBundleJSON(t, &full)
	checkSecretBundleJSON(t, &secretBundle{})
	f := false
	checkSecretBundleJSON(t, &secretBundle{ID: "https://v.vault.azure.net/secrets/s/1", Tags: map[string]string{},
		Attributes: attributesWire{Enabled: &f}})
	checkSecretBundleJSON(t, &secretBundle{Attributes: attributesWire{Attestation: &keyAttestationWire{}}})
	// Every field of the wire types is written: a field not in appendJSON
	// would be missing from the full bundle's output above, unless a new
	// type of field was skipped by fillAll.
	for _, typ := range []reflect.Type{reflect.TypeOf(secretBundle{}), reflect.TypeOf(attributesWire{}), reflect.TypeOf(deletedWire{})} {
		for i := range typ.NumField() {
			switch typ.Field(i).Type.Kind() {
			case reflect.Pointer, reflect.String, reflect.Map, reflect.Struct:
			default:
				t.Fatalf("%s.%s: a field kind fillAll does not fill", typ, typ.Field(i).Name)
			}
		}
	}
}

// FuzzSecretBundleJSON: any strings and numbers, the bytes json.Marshal
// writes.
func FuzzSecretBundleJSON(f *testing.F) {
	f.Add("value", "https://v/secrets/s/1", "text/plain", "k", "v", "", int64(1), true, uint8(0xff))
	f.Add("<\u2028\xff\"\\", "", "", "", "", "rid", int64(-1), false, uint8(0))
	f.Fuzz(func(t *testing.T, value, id, ct, tagK, tagV, rid string, n int64, flag bool, set uint8) {
		b := &secretBundle{ID: id, ContentType: ct, Kid: tagV}
		on := func(bit uint8) bool { return set&(1<<bit) != 0 }
		if on(0) {
			b.Value = &value
		}
		if on(1) {
			b.Tags = map[string]string{tagK: tagV, id: value}
		}
		if on(2) {
			b.Managed = &flag
		}
		if on(3) {
			b.RecoveryID, b.DeletedDate, b.ScheduledPurgeDate = rid, &n, &n
		}
		days := int(n)
		if on(4) {
			b.Attributes = attributesWire{Enabled: &flag, NotBefore: &n, Created: &n, RecoverableDays: &days, RecoveryLevel: rid}
		}
		if on(5) {
			b.Attributes.Expires, b.Attributes.Updated, b.Attributes.Exportable, b.Attributes.HSMPlatform = &n, &n, &flag, ct
		}
		checkSecretBundleJSON(t, b)
	})
}

func BenchmarkSecretBundleJSON(b *testing.B) {
	v, e, c, d := "s3cr3t value", true, int64(1764800000), 90
	sb := &secretBundle{Value: &v, ID: "https://bench.vault.azure.net/secrets/s/0123456789abcdef0123456789abcdef",
		Attributes: attributesWire{Enabled: &e, Created: &c, Updated: &c, RecoveryLevel: "Recoverable", RecoverableDays: &d}}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(sb)
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = sb.appendJSON(make([]byte, 0, 512))
		}
	})
}
