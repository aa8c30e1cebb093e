package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// b64urlReference is b64url's JSON as it was written first: through
// encoding/json's string coding. The direct coding must give the same.
func b64urlMarshalReference(b []byte) ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func b64urlUnmarshalReference(data []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	return raw, nil
}

func checkB64URLUnmarshal(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := b64urlUnmarshalReference(data)
	var got b64url
	err := got.UnmarshalJSON(data)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q: error %v, reference %v", data, err, wantErr)
	}
	if err == nil && (!bytes.Equal(got, want) || (got == nil) != (want == nil)) {
		t.Fatalf("%q: %x, reference %x", data, got, want)
	}
}

func TestB64URLMatchesReference(t *testing.T) {
	for n := range 70 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		got, _ := b64url(b).MarshalJSON()
		want, _ := b64urlMarshalReference(b)
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal %x: %s, reference %s", b, got, want)
		}
		checkB64URLUnmarshal(t, got)
		padded := base64.URLEncoding.EncodeToString(b)
		checkB64URLUnmarshal(t, []byte(`"`+padded+`"`))
	}
	got, _ := b64url(nil).MarshalJSON()
	if string(got) != `""` {
		t.Fatalf("nil: %s", got)
	}
	for _, in := range []string{`""`, `"="`, `"QQ"`, `"QQ=="`, `"\u0051Q"`, `"Q\/"`, `"a+b/"`, `"!!"`, `"QQ\n"`, `null`, `12`, `true`, `{}`, `[]`, "\"\xff\"", `"QUJD"`} {
		checkB64URLUnmarshal(t, []byte(in))
	}
}

// FuzzB64URLUnmarshal: for every JSON value (what encoding/json hands an
// UnmarshalJSON), the same bytes or the same error as the reference.
func FuzzB64URLUnmarshal(f *testing.F) {
	for _, s := range []string{`""`, `"QQ"`, `"QQ=="`, `"\u0051Q"`, `null`, `"-_-_"`, `"ab\"c"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // encoding/json never passes invalid JSON to UnmarshalJSON
		}
		checkB64URLUnmarshal(t, data)
	})
}

func BenchmarkB64URL(b *testing.B) {
	sig := make([]byte, 64) // a P-256 signature
	enc, _ := b64urlMarshalReference(sig)
	b.Run("marshal/reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = b64urlMarshalReference(sig)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = b64url(sig).MarshalJSON()
		}
	})
	b.Run("unmarshal/reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = b64urlUnmarshalReference(enc)
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var v b64url
		for b.Loop() {
			_ = v.UnmarshalJSON(enc)
		}
	})
}
