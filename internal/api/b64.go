package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// b64url is a binary field on the wire: unpadded base64url out
// (AZURE-API.md §0.2); padded base64url accepted in.
type b64url []byte

func (b b64url) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64url) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return errors.New("not base64url")
	}
	*b = raw
	return nil
}
