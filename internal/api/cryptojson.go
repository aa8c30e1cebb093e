package api

import (
	"encoding/base64"
	"net/http"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/audit"
)

// The JSON of key operations (sign, verify, encrypt, decrypt, wrapKey,
// unwrapKey, encapsulate, decapsulate), written by hand: encoding/json's
// reflection was ≈5 % of an ES256 sign's server CPU for the request body
// and again for the answer. Both keep encoding/json's behaviour exactly:
//
//   - decodeFast takes only the form every SDK sends (one object whose
//     keys are the exact field names, each once, and whose values are
//     strings without escapes; JSON whitespace anywhere between tokens)
//     and anything else goes to decodeJSON as before, so its refusals and
//     their messages are decodeJSON's. FuzzDecodeCryptoBody holds every
//     input to decodeJSON's result.
//   - appendJSON writes what json.Marshal writes, byte for byte
//     (TestCryptoResultJSON, FuzzCryptoResultJSON).

// decodeCryptoBody decodes raw into b (which must be zero) exactly as
// decodeJSON(raw, b) does.
func decodeCryptoBody(raw []byte, b *cryptoBody) error {
	if b.decodeFast(raw) {
		return nil
	}
	b.wipe()
	var slow cryptoBody // on the heap only on this path: b itself does not escape
	err := decodeJSON(raw, &slow)
	*b = slow
	return err
}

// decodeCrypto reads and decodes a key operation's body (rq.decode for
// cryptoBody).
func (rq *request) decodeCrypto(b *cryptoBody) error {
	raw, err := rq.readBody()
	if err != nil {
		return err
	}
	defer clear(raw)
	return decodeCryptoBody(raw, b)
}

// wipe clears what a partial fast decode left in b and zeroes it.
func (b *cryptoBody) wipe() {
	clear(b.Value)
	clear(b.Digest)
	clear(b.IV)
	clear(b.AAD)
	clear(b.Tag)
	*b = cryptoBody{}
}

// decodeFast decodes raw into b when raw is in the plain form and reports
// whether it was. For such a body decodeJSON's answer is known without
// running it: the body is valid UTF-8 with no escape at all (so
// jsonbody.Check passes), it is a JSON object (so it is not empty and
// json.Unmarshal accepts it), each key names its field exactly (no
// case-folded match, no unknown field, no duplicate: the last-one-wins
// rules never apply), a string without escapes is its own content
// (json.Unmarshal's alg), and b64url.UnmarshalJSON decodes such a string's
// content with decodeB64URL, called here too. Anything else, a bad
// base64url value included, returns false, and b may be partly filled.
func (b *cryptoBody) decodeFast(raw []byte) bool {
	i := skipJSONSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return false
	}
	i = skipJSONSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return skipJSONSpace(raw, i+1) == len(raw)
	}
	var seen uint8
	for {
		if i == len(raw) || raw[i] != '"' {
			return false
		}
		end, ok := plainJSONString(raw, i+1)
		if !ok {
			return false
		}
		var bit uint8
		var dst *b64url // nil for alg
		switch string(raw[i+1 : end]) {
		case "alg":
			bit = 1 << 0
		case "value":
			bit, dst = 1<<1, &b.Value
		case "digest":
			bit, dst = 1<<2, &b.Digest
		case "iv":
			bit, dst = 1<<3, &b.IV
		case "aad":
			bit, dst = 1<<4, &b.AAD
		case "tag":
			bit, dst = 1<<5, &b.Tag
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		i = skipJSONSpace(raw, end+1)
		if i == len(raw) || raw[i] != ':' {
			return false
		}
		i = skipJSONSpace(raw, i+1)
		if i == len(raw) || raw[i] != '"' {
			return false
		}
		end, ok = plainJSONString(raw, i+1)
		if !ok {
			return false
		}
		s := raw[i+1 : end]
		if dst == nil {
			if !utf8.Valid(s) {
				return false
			}
			b.Alg = algName(s)
		} else {
			v, err := decodeB64URL(s)
			if err != nil {
				return false
			}
			*dst = v
		}
		i = skipJSONSpace(raw, end+1)
		if i == len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i = skipJSONSpace(raw, i+1)
		case '}':
			return skipJSONSpace(raw, i+1) == len(raw)
		default:
			return false
		}
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace (RFC 8259: space, tab, line feed, carriage return).
func skipJSONSpace(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainJSONString returns the index of the quote closing the string whose
// content starts at raw[i], if that content has no escape and no control
// character (which JSON does not allow unescaped); ok is false otherwise.
// The content's UTF-8 is not checked.
func plainJSONString(raw []byte, i int) (end int, ok bool) {
	for j := i; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			return j, true
		case c == '\\' || c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

// knownAlgs are the algorithm names of key operations
// (AZURE-API.md §4), so that the common ones cost no allocation.
var knownAlgs = func() map[string]string {
	m := map[string]string{}
	for _, a := range []string{
		"ES256", "ES256K", "ES384", "ES512", "HS256", "HS384", "HS512",
		"PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
		"RSA1_5", "RSA-OAEP", "RSA-OAEP-256",
		"A128CBC", "A192CBC", "A256CBC", "A128CBCPAD", "A192CBCPAD", "A256CBCPAD",
		"A128GCM", "A192GCM", "A256GCM", "A128KW", "A192KW", "A256KW",
		"CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD",
	} {
		m[a] = a
	}
	return m
}()

// algName is string(s), without a new string for a known algorithm.
func algName(s []byte) string {
	if a, ok := knownAlgs[string(s)]; ok {
		return a
	}
	return string(s)
}

// replyCrypto is rq.reply(http.StatusOK, r), without boxing r (and so
// moving it to the heap) on the current api-versions' path. Older ones
// are reshaped from json.Marshal's output (writeShapedJSON) as before.
func (rq *request) replyCrypto(r *cryptoResult) error {
	if !shapeFor(rq.apiVersion).current() {
		c := *r
		return rq.reply(http.StatusOK, &c)
	}
	writeJSONBytes(rq.w, http.StatusOK, r.appendJSON(make([]byte, 0, r.sizeHint())))
	return nil
}

// appendJSON appends json.Marshal(r) to dst.
func (r *cryptoResult) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if r.Kid != "" {
		dst = append(dst, `"kid":`...)
		dst = audit.AppendJSONString(dst, r.Kid)
		dst = append(dst, ',')
	}
	dst = append(dst, `"value":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, r.Value)
	dst = append(dst, '"')
	for _, f := range [...]struct {
		name string
		v    b64url
	}{{`,"iv":"`, r.IV}, {`,"tag":"`, r.Tag}, {`,"aad":"`, r.AAD}} {
		if len(f.v) > 0 { // omitempty
			dst = append(dst, f.name...)
			dst = base64.RawURLEncoding.AppendEncode(dst, f.v)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// sizeHint is r's JSON length when the kid needs no escaping.
func (r *cryptoResult) sizeHint() int {
	enc := base64.RawURLEncoding
	return 48 + len(r.Kid) + enc.EncodedLen(len(r.Value)) + enc.EncodedLen(len(r.IV)) +
		enc.EncodedLen(len(r.Tag)) + enc.EncodedLen(len(r.AAD))
}

// appendJSON appends json.Marshal(v) to dst.
func (v verifyResult) appendJSON(dst []byte) []byte {
	if v.Value {
		return append(dst, `{"value":true}`...)
	}
	return append(dst, `{"value":false}`...)
}
