// Package jsonbody checks that a request body is JSON *text* the decoder
// will not silently change. encoding/json replaces invalid UTF-8 and
// unpaired UTF-16 surrogate escapes ("\ud800") with U+FFFD instead of
// refusing them, so a secret value or tag sent that way would be stored
// altered. RFC 8259 requires JSON text to be UTF-8; the data plane's and
// ARM's decoders (internal/api decodeJSON, internal/mgmt decodeBody) call
// Check first and answer 400 on a refusal, before anything changes.
package jsonbody

import (
	"bytes"
	"unicode/utf8"
)

// Problem says what Check found and where (a byte offset into the body;
// never the bytes themselves, which may be a secret).
type Problem struct {
	Offset    int
	Surrogate bool // an unpaired surrogate escape; otherwise invalid UTF-8
}

// Check returns nil when raw is valid UTF-8 and every \u escape that
// denotes a UTF-16 surrogate is half of a high-low pair. It does not
// check the JSON grammar (the decoder does): outside a string a
// backslash is already a syntax error, so escapes are found by scanning
// backslashes left to right.
func Check(raw []byte) *Problem {
	if !utf8.Valid(raw) {
		off := 0
		for off < len(raw) {
			r, n := utf8.DecodeRune(raw[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return &Problem{Offset: off}
	}
	i := bytes.IndexByte(raw, '\\')
	if i < 0 {
		return nil
	}
	pendingHigh := -1 // offset of a high surrogate escape awaiting its low half
	for i < len(raw) {
		if raw[i] != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				break
			}
			if pendingHigh >= 0 && j > 0 {
				return &Problem{Offset: pendingHigh, Surrogate: true}
			}
			i += j
			continue
		}
		u, ok := unit(raw, i)
		switch {
		case !ok: // another escape (\n, \\, \" ...): two bytes
			if pendingHigh >= 0 {
				return &Problem{Offset: pendingHigh, Surrogate: true}
			}
			i += 2
			continue
		case u >= 0xD800 && u <= 0xDBFF:
			if pendingHigh >= 0 {
				return &Problem{Offset: pendingHigh, Surrogate: true}
			}
			pendingHigh = i
		case u >= 0xDC00 && u <= 0xDFFF:
			if pendingHigh < 0 {
				return &Problem{Offset: i, Surrogate: true}
			}
			pendingHigh = -1
		default:
			if pendingHigh >= 0 {
				return &Problem{Offset: pendingHigh, Surrogate: true}
			}
		}
		i += 6
	}
	if pendingHigh >= 0 {
		return &Problem{Offset: pendingHigh, Surrogate: true}
	}
	return nil
}

// unit reads the \uXXXX escape at raw[i] (raw[i] is a backslash).
func unit(raw []byte, i int) (rune, bool) {
	if i+6 > len(raw) || raw[i+1] != 'u' {
		return 0, false
	}
	var u rune
	for _, c := range raw[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return u, true
}
