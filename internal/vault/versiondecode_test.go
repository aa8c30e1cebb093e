package vault

import (
	"encoding/json"
	"reflect"
	"testing"
)

func secretVersionSamples() []Version[secretPayload] {
	n, x, f, t := int64(1700000000), int64(-1), false, true
	return []Version[secretPayload]{
		{Payload: secretPayload{Value: []byte{}}},
		{Version: "0123456789abcdef0123456789abcdef", Attributes: Attributes{Enabled: true, Created: 1764800000, Updated: 1764800001},
			Payload: secretPayload{Value: []byte("s3cr3t value")}},
		{Version: "v", Attributes: Attributes{Enabled: true, NotBefore: &n, Expires: &x, Created: 0, Updated: -0, Exportable: &f},
			Tags: map[string]string{"env": "prod", "owner": "team ä", "": ""}, Payload: secretPayload{Value: []byte{}, ContentType: "application/x-pkcs12", Kid: "https://v.vault.local/keys/k/1"}},
		{Attributes: Attributes{Exportable: &t}, Tags: map[string]string{}, Payload: secretPayload{Value: make([]byte, 1000)}},
	}
}

// The fast path reads what json.Marshal writes for a secret version (so
// every ordinary secret get takes it) and gives json.Unmarshal's result.
func TestDecodeSecretVersionMatchesJSON(t *testing.T) {
	for i, want := range secretVersionSamples() {
		raw, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON Version[secretPayload]
		if err := json.Unmarshal(raw, &viaJSON); err != nil {
			t.Fatal(err)
		}
		var got Version[secretPayload]
		if !decodeSecretVersion(raw, &got) {
			t.Fatalf("sample %d: fast path refused json.Marshal's output %s", i, raw)
		}
		if !reflect.DeepEqual(got, viaJSON) {
			t.Fatalf("sample %d: fast path %+v, json.Unmarshal %+v", i, got, viaJSON)
		}
	}
	// Outside the subset: refused, *v untouched, and json.Unmarshal decides.
	for _, in := range []string{
		``, `{`, `{} `, ` {}`, `{"version":"a","version":"b"}`, `{"Version":"a"}`, `{"version":"a\"b"}`,
		`{"version":"\u0061"}`, `{"attributes":{"created":1.0}}`, `{"attributes":{"created":01}}`,
		`{"attributes":{"nbf":null}}`, `{"tags":null}`, `{"tags":{"a":"1","a":"2"}}`, `{"payload":{"value":"!!"}}`,
		`{"payload":{"value":null}}`, `{"unknown":1}`, `{"version":"a"}x`, "{\"version\":\"\xff\"}",
		`{"attributes":{"created":99999999999999999999}}`, `{"attributes":{"enabled":tru}}`, `{"version":"a",}`,
	} {
		v := Version[secretPayload]{Version: "keep"}
		if decodeSecretVersion([]byte(in), &v) {
			t.Errorf("accepted %q", in)
		}
		if v.Version != "keep" {
			t.Errorf("%q changed *v", in)
		}
	}
}

// FuzzDecodeSecretVersion: whatever the fast path accepts, json.Unmarshal
// accepts too and decodes to the same value.
func FuzzDecodeSecretVersion(f *testing.F) {
	for _, v := range secretVersionSamples() {
		raw, _ := json.Marshal(v)
		f.Add(raw)
	}
	f.Add([]byte(`{"attributes":{"created":-0,"nbf":0},"tags":{},"payload":{"value":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Version[secretPayload]
		if !decodeSecretVersion(b, &got) {
			if !reflect.DeepEqual(got, Version[secretPayload]{}) {
				t.Fatalf("refused %q but changed *v", b)
			}
			return
		}
		var want Version[secretPayload]
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, json.Unmarshal: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast path %+v, json.Unmarshal %+v", b, got, want)
		}
	})
}

func BenchmarkDecodeSecretVersion(b *testing.B) {
	raw, _ := json.Marshal(secretVersionSamples()[1])
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v Version[secretPayload]
			if err := json.Unmarshal(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v Version[secretPayload]
			if !decodeSecretVersion(raw, &v) {
				b.Fatal("refused")
			}
		}
	})
}
