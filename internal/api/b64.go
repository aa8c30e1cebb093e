package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// b64url is a binary field on the wire: unpadded base64url out
// (AZURE-API.md §0.2); padded base64url accepted in.
type b64url []byte

// MarshalJSON writes the quoted encoding directly: base64url needs no JSON
// escaping, so this is what json.Marshal of the encoded string gives.
func (b b64url) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, base64.RawURLEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.RawURLEncoding.AppendEncode(out, b)
	return append(out, '"'), nil
}

func (b *b64url) UnmarshalJSON(data []byte) error {
	var s []byte
	if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' && bytes.IndexByte(data, '\\') < 0 {
		// A string without escapes is its own content (the decoder that
		// called us has checked the JSON; a byte that is not UTF-8 is not
		// base64url either way).
		s = data[1 : n-1]
	} else {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return err
		}
		s = []byte(str)
	}
	raw, err := decodeB64URL(s)
	if err != nil {
		return err
	}
	*b = raw
	return nil
}

// decodeB64URL decodes the content of a JSON string (escapes already
// resolved) as base64url, padded or not, into a new slice (never nil).
func decodeB64URL(s []byte) (b64url, error) {
	s = bytes.TrimRight(s, "=")
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(s)))
	n, err := base64.RawURLEncoding.Decode(raw, s)
	if err != nil {
		clear(raw)
		return nil, errors.New("not base64url")
	}
	return raw[:n], nil
}
