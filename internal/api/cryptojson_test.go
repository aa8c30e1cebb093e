package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// checkCryptoBody is the oracle of the hand-written key-operation body
// decoder: decodeJSON (what every key operation used before) is the
// reference. When decodeFast takes a body, decodeJSON accepts it with the
// same values (nil and empty slices told apart); whatever decodeFast does,
// decodeCryptoBody answers exactly as decodeJSON: the same values, or the
// same status, code and message. It reports whether the fast path took raw.
func checkCryptoBody(t *testing.T, raw []byte) bool {
	t.Helper()
	var want cryptoBody
	wantErr := decodeJSON(raw, &want)

	var fast cryptoBody
	took := fast.decodeFast(raw)
	if took && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("%q: the fast path took %#v; decodeJSON: %#v, %v", raw, fast, want, wantErr)
	}

	var got cryptoBody
	err := decodeCryptoBody(raw, &got)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, decodeJSON %v", raw, err, wantErr)
	}
	if err != nil {
		s1, b1, k1 := toWire(err)
		s2, b2, k2 := toWire(wantErr)
		if s1 != s2 || k1 != k2 || !reflect.DeepEqual(b1, b2) {
			t.Fatalf("%q: refused with %d %+v, decodeJSON %d %+v", raw, s1, b1, s2, b2)
		}
		return took
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, decodeJSON %#v", raw, got, want)
	}
	return took
}

var (
	digest32 = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xdd, 0x56, 0xde}, 11)[:32])
	sig64    = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xef, 0x01}, 22)[:64])
)

// sdkCryptoBodies are key-operation bodies as the SDKs and tools send them.
var sdkCryptoBodies = []string{
	// Go azkeys (json.Marshal of a map: sorted keys, unpadded base64url),
	// Keyward's own bench, .NET.
	`{"alg":"ES256","value":"` + digest32 + `"}`,
	`{"alg":"RS256","value":"` + digest32 + `"}`,
	`{"alg":"ES256","digest":"` + digest32 + `","value":"` + sig64 + `"}`,
	`{"alg":"RSA-OAEP-256","value":"` + sig64 + `"}`,
	`{"aad":"AQID","alg":"A256GCM","iv":"AAECAwQFBgcICQoL","tag":"AAECAwQFBgcICQoLDA0ODw","value":"aGVsbG8"}`,
	`{"alg":"A256CBCPAD","iv":"AAECAwQFBgcICQoLDA0ODw","value":"aGVsbG8"}`,
	// Python (json.dumps: ", " and ": ").
	`{"alg": "ES256", "value": "` + digest32 + `"}`,
	`{"alg": "PS256", "digest": "` + digest32 + `", "value": "` + sig64 + `"}`,
	// JavaScript (the mapper's order: alg, value, iv, aad, tag).
	`{"alg":"A128GCM","value":"aGVsbG8","iv":"AAECAwQFBgcICQoL","aad":"AQID","tag":"AAECAwQFBgcICQoLDA0ODw"}`,
	`{"alg":"ES384","digest":"` + digest32 + `","value":"` + sig64 + `"}`,
	// Padded base64url, pretty-printed, an unknown algorithm, empty values.
	`{"alg":"RS256","value":"` + base64.URLEncoding.EncodeToString([]byte("digest")) + `"}`,
	"{\n  \"alg\" : \"ES256\",\r\n\t\"value\" : \"" + digest32 + "\"\n}\n",
	`{"alg":"MY-ALG","value":""}`, `{"alg":"","value":""}`, `{}`, ` {} `, `{"alg":"ES256"}`,
	`{"value":"QQ","alg":"é☃"}`,
}

// The bodies the SDKs send take the fast path, with decodeJSON's values.
func TestDecodeCryptoBodySDKBodies(t *testing.T) {
	for _, s := range sdkCryptoBodies {
		if !checkCryptoBody(t, []byte(s)) {
			t.Errorf("%q: not taken by the fast path", s)
		}
	}
	var b cryptoBody
	if err := decodeCryptoBody([]byte(`{"alg":"ES256","value":"3VbeQTeVHZySaBsDQW7BX4hrRIKifjpRfTLwhSRMvl0"}`), &b); err != nil ||
		b.Alg != "ES256" || len(b.Value) != 32 || b.Digest != nil || b.IV != nil {
		t.Fatalf("%#v %v", b, err)
	}
}

// cryptoBodyEdges are bodies the fast path must leave to decodeJSON (or
// may take only with decodeJSON's result).
var cryptoBodyEdges = []string{
	``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `}`, `{"alg"`, `{"alg":`, `{"alg":"ES256"`, `{"alg":"ES256",}`, `{,}`,
	`{"alg":"ES256","value":"QQ"} trailing`, `{"alg":"ES256"}{}`, `{"alg":"ES256"}}`,
	`{"alg":"ES256","alg":"RS256"}`, `{"value":"QQ","value":"Qg"}`, `{"value":"!!","value":"QQ"}`, `{"alg":"ES256","alg":null}`,
	`{"ALG":"ES256"}`, `{"Alg":"ES256","alg":"RS256"}`, `{"Value":"QQ"}`, `{"VALUE":"QQ","value":"Qg"}`, `{"alſ":"x"}`,
	`{"alg":"ES\u0032\u0035\u0036"}`, `{"alg":"ES256\n"}`, `{"alg":"a\"b"}`, `{"alg":"\u0000"}`, "{\"alg\":\"a\x00\"}",
	`{"value":"Q\u0051"}`, `{"value":"QQ\n"}`, `{"value":"Q\/"}`, `{"a\u006cg":"ES256"}`,
	`{"alg":1}`, `{"alg":null}`, `{"value":null}`, `{"value":1}`, `{"value":true}`, `{"value":[]}`, `{"value":{}}`,
	`{"alg":1,"value":"!!"}`, `{"value":"!!","alg":1}`, `{"alg":1,"value":"QQ"}`, `{"iv":"QQ","iv":1}`,
	`{"value":"QQ=="}`, `{"value":"QQ="}`, `{"value":"QQ==="}`, `{"value":"="}`, `{"value":"Q=Q"}`, `{"value":"QR"}`,
	`{"value":"a+b/"}`, `{"value":"Q"}`, `{"value":"QUJD"}`, `{"value":"-_-_"}`,
	`{"kid":"x","alg":"ES256"}`, `{"alg":"ES256","extra":{"a":[1,2]}}`, `{"alg":"ES256","value":"QQ","digest":"Qg","iv":"","aad":"","tag":""}`,
	"{\"alg\":\"\xff\"}", "{\"alg\":\"\xed\xa0\x80\"}", `{"alg":"\ud800"}`, "\xef\xbb\xbf{}", "\v{}", "{}\f",
	"{\"alg\":\"ES256\",\"value\":\"\xff\"}", `{"alg":"ES256","value":"QQ"}` + strings.Repeat(" ", 100),
	`{"value":"` + strings.Repeat("QUJD", 5000) + `"}`, `{"alg":"` + strings.Repeat("é", 3000) + `"}`,
}

func TestDecodeCryptoBodyEdges(t *testing.T) {
	for _, s := range cryptoBodyEdges {
		checkCryptoBody(t, []byte(s))
	}
	// Anything but the plain form goes to decodeJSON.
	for _, s := range []string{
		`{"alg":"ES256","alg":"RS256"}`, `{"ALG":"ES256"}`, `{"alg":"ES\u0032"}`, `{"alg":null}`,
		`{"value":"!!"}`, `{"kid":"x"}`, `{"alg":"ES256"} x`, "{\"alg\":\"\xff\"}",
	} {
		var b cryptoBody
		if b.decodeFast([]byte(s)) {
			t.Errorf("%q: taken by the fast path", s)
		}
	}
}

// FuzzDecodeCryptoBody: for any bytes, decodeCryptoBody answers as
// decodeJSON does (values, or status, code and message), and the fast
// path takes nothing decodeJSON would refuse or read differently.
//
//	go test -run '^$' -fuzz FuzzDecodeCryptoBody ./internal/api
func FuzzDecodeCryptoBody(f *testing.F) {
	for _, s := range sdkCryptoBodies {
		f.Add([]byte(s))
	}
	for _, s := range cryptoBodyEdges {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkCryptoBody(t, raw)
	})
}

func checkCryptoResultJSON(t *testing.T, r *cryptoResult) {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got := r.appendJSON(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendJSON:   %s\njson.Marshal: %s", got, want)
	}
	plain := true // a kid that needs no escaping
	for _, c := range []byte(r.Kid) {
		plain = plain && c >= 0x20 && c < 0x7f && !strings.ContainsRune(`"\<>&`, rune(c))
	}
	if plain && len(got) > r.sizeHint() {
		t.Fatalf("%d bytes, sizeHint %d", len(got), r.sizeHint())
	}
}

// The hand-written key-operation answers are json.Marshal's, byte for byte.
func TestCryptoResultJSON(t *testing.T) {
	kid := "https://v1.vault.localhost:8443/keys/k/0123456789abcdef0123456789abcdef"
	for n := range 70 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		checkCryptoResultJSON(t, &cryptoResult{Kid: kid, Value: b})
		checkCryptoResultJSON(t, &cryptoResult{Value: b, IV: b[:n/2], Tag: b[n/3:], AAD: b[:n/4]})
	}
	checkCryptoResultJSON(t, &cryptoResult{})
	checkCryptoResultJSON(t, &cryptoResult{Kid: "x<\"é\xff\u2028", Value: b64url{}, IV: b64url{1}, Tag: b64url{2}, AAD: b64url{3}})
	for _, v := range []bool{true, false} {
		want, _ := json.Marshal(verifyResult{Value: v})
		if got := (verifyResult{Value: v}).appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("verify %v: %s, json.Marshal %s", v, got, want)
		}
	}
	// Every field of cryptoResult is written by appendJSON: a new field
	// fails here until appendJSON writes it.
	if n := reflect.TypeOf(cryptoResult{}).NumField(); n != 5 {
		t.Fatalf("cryptoResult has %d fields; appendJSON writes 5", n)
	}
	if n := reflect.TypeOf(verifyResult{}).NumField(); n != 1 {
		t.Fatalf("verifyResult has %d fields; appendJSON writes 1", n)
	}
}

// FuzzCryptoResultJSON: any kid and values, the bytes json.Marshal writes.
func FuzzCryptoResultJSON(f *testing.F) {
	f.Add("https://v/keys/k/1", []byte("sig"), []byte{}, []byte(nil), []byte{0xff})
	f.Add("<\u2028\xff\"\\", []byte(nil), []byte{1}, []byte{2, 3}, []byte(nil))
	f.Fuzz(func(t *testing.T, kid string, value, iv, tag, aad []byte) {
		checkCryptoResultJSON(t, &cryptoResult{Kid: kid, Value: value, IV: iv, Tag: tag, AAD: aad})
	})
}

func BenchmarkCryptoBody(b *testing.B) {
	body := []byte(`{"alg":"ES256","value":"` + digest32 + `"}`)
	b.Run("decode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v cryptoBody
			_ = decodeJSON(body, &v)
		}
	})
	b.Run("decode/fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v cryptoBody
			_ = decodeCryptoBody(body, &v)
		}
	})
	sig := make([]byte, 64)
	res := &cryptoResult{Kid: "https://bench.vault.localhost:8443/keys/es256/0123456789abcdef0123456789abcdef", Value: sig}
	b.Run("encode/json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(res)
		}
	})
	b.Run("encode/appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = res.appendJSON(make([]byte, 0, res.sizeHint()))
		}
	})
}

// replyCrypto and the verify answer write what rq.reply wrote before, for
// every api-version (older ones are reshaped, with keys in another order):
// the same status, headers and bytes.
func TestReplyCryptoMatchesReply(t *testing.T) {
	results := []cryptoResult{
		{Kid: "https://v1.vault.localhost:8443/keys/k/0123456789abcdef0123456789abcdef", Value: b64url(bytes.Repeat([]byte{7}, 64))},
		{Kid: "https://p.managedhsm.localhost/keys/a/1", Value: b64url("ct"), IV: b64url("iv"), Tag: b64url("tag"), AAD: b64url("aad")},
		{Value: b64url{}},
	}
	for _, v := range apiVersions {
		for _, r := range results {
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			before := r
			(&request{w: want, apiVersion: v}).reply(http.StatusOK, before) // the old call: by value through json.Marshal
			if err := (&request{w: got, apiVersion: v}).replyCrypto(&r); err != nil {
				t.Fatal(err)
			}
			if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Fatalf("%s: %d %v %s\nrq.reply: %d %v %s", v, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
		for _, ok := range []bool{true, false} {
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			raw, _ := json.Marshal(verifyResult{Value: ok})
			writeShapedJSON(want, http.StatusOK, json.RawMessage(raw), shapeFor(v))
			(&request{w: got, apiVersion: v}).reply(http.StatusOK, verifyResult{Value: ok})
			if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || !reflect.DeepEqual(got.Header(), want.Header()) {
				t.Fatalf("%s verify: %s, json.Marshal %s", v, got.Body, want.Body)
			}
		}
	}
}
