package jsonbody

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	for _, s := range []string{
		``, `{}`, `{"value":"plain"}`, `{"value":"é€😀"}`, `{"value":"\u00e9\u20ac"}`, `{"value":"\ud83d\ude00"}`,
		`{"value":"\uD83D\uDE00x"}`, `{"value":"\\ud800"}`, `{"value":"\\\ud83d\ude00"}`, `{"value":"\ufffd"}`,
		"{\"value\":\"\xef\xbf\xbd\"}", `{"a\nb":"\"\\\/\b\f\n\r\t"}`, `{"k":"\uffff\ufffe"}`,
	} {
		if p := Check([]byte(s)); p != nil {
			t.Errorf("%s refused: %+v", s, *p)
		}
	}
	for _, c := range []struct {
		s         string
		off       int
		surrogate bool
	}{
		{"{\"value\":\"\xff\"}", 10, false},
		{"{\"value\":\"ab\xc3\"}", 12, false},
		{"{\"value\":\"\xed\xa0\x80\"}", 10, false}, // a surrogate encoded in UTF-8
		{"{\"value\":\"\xc0\xaf\"}", 10, false},     // overlong
		{`{"value":"\ud800"}`, 10, true},
		{`{"value":"\udc00"}`, 10, true},
		{`{"value":"\ud800x"}`, 10, true},
		{`{"value":"\ud800\u0041"}`, 10, true},
		{`{"value":"\ud800\n"}`, 10, true},
		{`{"value":"\ud800\ud800\udc00"}`, 10, true},
		{`{"value":"\ud83d\ude00\ude00"}`, 22, true},
		{`{"\udbff":1}`, 2, true},
		{`{"value":"a","tags":{"t":"\\\udfff"}}`, 28, true},
	} {
		p := Check([]byte(c.s))
		if p == nil || p.Offset != c.off || p.Surrogate != c.surrogate {
			t.Errorf("%q: %+v, want offset %d surrogate %v", c.s, p, c.off, c.surrogate)
		}
	}
}

// escapeRE finds JSON escapes left to right: a backslash always starts
// one, and a match consumes it whole, so "\\" never starts another.
var escapeRE = regexp.MustCompile(`(?s)\\(u[0-9a-fA-F]{4}|.)`)

// refSurrogatesPaired is a second, independent statement of the
// surrogate rule (regular expression instead of Check's byte scan).
func refSurrogatesPaired(raw []byte) bool {
	ms := escapeRE.FindAllIndex(raw, -1)
	code := func(m []int) int {
		if m[1]-m[0] != 6 || raw[m[0]+1] != 'u' {
			return -1
		}
		v, _ := strconv.ParseUint(string(raw[m[0]+2:m[1]]), 16, 32)
		return int(v)
	}
	for k := 0; k < len(ms); k++ {
		switch u := code(ms[k]); {
		case u >= 0xD800 && u <= 0xDBFF:
			if k+1 == len(ms) || ms[k+1][0] != ms[k][1] {
				return false
			}
			if l := code(ms[k+1]); l < 0xDC00 || l > 0xDFFF {
				return false
			}
			k++
		case u >= 0xDC00 && u <= 0xDFFF:
			return false
		}
	}
	return true
}

// hasReplacement reports whether any string (key or value) in v holds
// U+FFFD.
func hasReplacement(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, utf8.RuneError)
	case []any:
		for _, e := range x {
			if hasReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if hasReplacement(k) || hasReplacement(e) {
				return true
			}
		}
	}
	return false
}

// FuzzCheck: on any JSON text Check agrees with an independent statement
// of its rule (UTF-8 validity and a regular-expression scan of the
// surrogate escapes), and — when the text itself holds no U+FFFD, raw or
// escaped — Check accepts it exactly when encoding/json decodes it
// without a replacement character, which is what Check exists to prevent.
// Any input at all: no panic, and a problem's offset is inside the body.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"value":"x"}`, `[1e999,"\ud800"]`, `{"value":"\ud800"}`, "{\"value\":\"\xff\"}", `{"v":"\ud83d\ude00"}`,
		`{"v":"\\ud800"}`, `["\udc00\ud800"]`, `"\ud800\\"`, `{"\ud800\udc00":"\uDBFF\uDFFF"}`, `"\u12`, `\`, `"\ud800\u"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := Check(raw)
		if p != nil && (p.Offset < 0 || p.Offset >= len(raw)) {
			t.Fatalf("offset %d outside a %d-byte body", p.Offset, len(raw))
		}
		if p != nil && !p.Surrogate && utf8.Valid(raw) {
			t.Fatalf("valid UTF-8 reported invalid at %d", p.Offset)
		}
		if !json.Valid(raw) {
			return
		}
		want := utf8.Valid(raw) && refSurrogatesPaired(raw)
		if (p == nil) != want {
			t.Fatalf("%q: Check %+v, reference accepts: %v", raw, p, want)
		}
		if bytes.Contains(bytes.ToLower(raw), []byte("ufffd")) || bytes.Contains(raw, []byte("\uFFFD")) {
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // 1e999 is valid JSON but no float64
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("json.Valid text does not decode: %v", err)
		}
		if replaced := hasReplacement(v); (p == nil) == replaced {
			t.Fatalf("%q: Check %+v, but encoding/json replaced characters: %v", raw, p, replaced)
		}
	})
}
