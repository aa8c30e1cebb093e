package keymgmtapi

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzParseBody: any bytes either parse to a JSON object, from which every
// field reader returns a value or a 400, or are refused with a 400; never a
// panic, never another status.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `{"type":"rsa-2048"}`, `{"min_enabled_version":"2","deletion_allowed":"true"}`,
		`{"purpose":["encrypt","decrypt"],"protection":"hsm"}`, `{"credentials":["client_id=a","client_secret=b=c"]}`,
		`{"credentials":{"access_key":"x"}}`, `{"credentials":"a=b,c=d"}`, `[1]`, `{"a":1}{}`, `{"min_enabled_version":1e400}`, `{"credentials":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := parseBody(raw)
		is400 := func(err error) bool {
			var ae *apiError
			return errors.As(err, &ae) && ae.status == http.StatusBadRequest && ae.msg != ""
		}
		if err != nil {
			if !is400(err) || b != nil {
				t.Fatalf("refusal %v (body %v)", err, b)
			}
			return
		}
		if b == nil {
			t.Fatal("nil body without error")
		}
		rq := &request{body: b}
		for name := range b {
			if _, _, err := rq.str(name); err != nil && !is400(err) {
				t.Fatal(err)
			}
			if n, err := rq.integer(name); err != nil && !is400(err) || n != nil && *n < 0 {
				t.Fatal(err, n)
			}
			if _, err := rq.boolean(name); err != nil && !is400(err) {
				t.Fatal(err)
			}
			if _, err := rq.strs(name); err != nil && !is400(err) {
				t.Fatal(err)
			}
			if m, err := rq.kv(name); err != nil && !is400(err) || err == nil && b[name] != nil && m == nil {
				t.Fatal(err, m)
			}
		}
	})
}

// TestParseBodyRefusesInvalidText: bytes encoding/json would store as
// U+FFFD are a 400, not a changed value.
func TestParseBodyRefusesInvalidText(t *testing.T) {
	for _, s := range []string{"{\"plaintext\":\"\xff\"}", `{"context":"\ud800"}`, "{\"\xc3\":1}"} {
		var ae *apiError
		if b, err := parseBody([]byte(s)); !errors.As(err, &ae) || ae.status != http.StatusBadRequest || b != nil {
			t.Errorf("%q: %v %v", s, b, err)
		}
	}
	if b, err := parseBody([]byte(`{"context":"é\ud83d\ude00"}`)); err != nil || b["context"] != "é\U0001F600" {
		t.Errorf("valid text: %v %v", b, err)
	}
}
