package vault

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// getVersionJSON reads the version record at key into ver. A secret
// version, read on every secret get and never cached (it holds the value),
// is decoded by decodeSecretVersion when its stored bytes are in the form
// json.Marshal writes them, which they are unless another writer made them;
// anything else goes through json.Unmarshal, as every other record does.
// The stored bytes are not changed.
func getVersionJSON[P any](tx barrier.Tx, key string, ver *Version[P]) (bool, error) {
	raw, err := tx.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer clear(raw)
	if sv, ok := any(ver).(*Version[secretPayload]); ok && decodeSecretVersion(raw, sv) {
		return true, nil
	}
	return true, json.Unmarshal(raw, ver)
}

// decodeSecretVersion sets *v to what json.Unmarshal(b, v) would give a
// zero Version[secretPayload] and reports true, when b is in the subset of
// JSON it reads: one object without whitespace, each field at most once
// and under its exact name, strings without escapes or invalid UTF-8,
// integers without fraction or exponent, tags a non-null object of
// strings, value standard base64. For anything else it reports false and
// leaves *v unchanged, and the caller uses json.Unmarshal (which then
// decodes it or returns its error). FuzzDecodeSecretVersion holds it to
// json.Unmarshal's result.
func decodeSecretVersion(b []byte, v *Version[secretPayload]) bool {
	d := fastJSON{b: b}
	var out Version[secretPayload]
	var seen uint8
	ok := d.object(func(k []byte) bool {
		switch string(k) {
		case "version":
			if seen&1 != 0 {
				return false
			}
			seen |= 1
			s, ok := d.str()
			out.Version = string(s)
			return ok
		case "attributes":
			if seen&2 != 0 {
				return false
			}
			seen |= 2
			return d.attributes(&out.Attributes)
		case "tags":
			if seen&4 != 0 {
				return false
			}
			seen |= 4
			out.Tags = map[string]string{}
			return d.object(func(k []byte) bool {
				if _, dup := out.Tags[string(k)]; dup {
					return false
				}
				s, ok := d.str()
				out.Tags[string(k)] = string(s)
				return ok
			})
		case "payload":
			if seen&8 != 0 {
				return false
			}
			seen |= 8
			return d.secretPayload(&out.Payload)
		}
		return false
	})
	if !ok || d.i != len(b) {
		return false
	}
	*v = out
	return true
}

func (d *fastJSON) attributes(a *Attributes) bool {
	var seen uint8
	return d.object(func(k []byte) bool {
		var bit uint8
		var ok bool
		switch string(k) {
		case "enabled":
			bit = 1
			a.Enabled, ok = d.bool()
		case "nbf":
			bit = 2
			var n int64
			n, ok = d.int64()
			a.NotBefore = &n
		case "exp":
			bit = 4
			var n int64
			n, ok = d.int64()
			a.Expires = &n
		case "created":
			bit = 8
			a.Created, ok = d.int64()
		case "updated":
			bit = 16
			a.Updated, ok = d.int64()
		case "exportable":
			bit = 32
			var t bool
			t, ok = d.bool()
			a.Exportable = &t
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

func (d *fastJSON) secretPayload(p *secretPayload) bool {
	var seen uint8
	return d.object(func(k []byte) bool {
		var bit uint8
		var s []byte
		ok := true
		switch string(k) {
		case "value":
			bit = 1
			if s, ok = d.str(); ok {
				// As encoding/json decodes a []byte: never nil.
				buf := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
				n, err := base64.StdEncoding.Decode(buf, s)
				p.Value, ok = buf[:n], err == nil
			}
		case "contentType":
			bit = 2
			s, ok = d.str()
			p.ContentType = string(s)
		case "kid":
			bit = 4
			s, ok = d.str()
			p.Kid = string(s)
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

// fastJSON reads the strict subset of JSON described at
// decodeSecretVersion; every method reports false on anything outside it.
type fastJSON struct {
	b []byte
	i int
}

// object reads {"k":value,...}, calling field with each key, the reader
// positioned at its value; field reads the value.
func (d *fastJSON) object(field func(k []byte) bool) bool {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return false
	}
	d.i++
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	for {
		k, ok := d.str()
		if !ok || d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		if !field(k) || d.i >= len(d.b) {
			return false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// str reads a string without escapes and returns its bytes.
func (d *fastJSON) str() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			if !utf8.Valid(s) {
				return nil, false
			}
			d.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (d *fastJSON) bool() (bool, bool) {
	rest := d.b[d.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

// int64 reads an integer as JSON writes it: -?(0|[1-9][0-9]*).
func (d *fastJSON) int64() (int64, bool) {
	start := d.i
	j := start
	if j < len(d.b) && d.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		j++
	}
	if j == digits || (d.b[digits] == '0' && j > digits+1) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[start:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	d.i = j
	return n, true
}
