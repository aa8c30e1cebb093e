package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestAttackBodies: oversized and malformed request bodies on both planes
// get 413 RequestEntityTooLarge or 400 with the plane's code, and change
// nothing: the canary keeps its value, the named secret or key is not
// created, the vault's tags stay empty.
func TestAttackBodies(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	v := newAttackVault(t, e, "attackbodies")
	huge := `{"value":"` + strings.Repeat("a", 30<<20) + `"}`
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	data := []struct {
		name, method, path, body string
		status                   int
		code                     string
		created                  string // secret or key that must not exist afterwards
	}{
		{"30 MB secret", "PUT", "secrets/canary", huge, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", ""},
		{"30 MB new secret", "PUT", "secrets/huge", huge, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "huge"},
		{"truncated JSON", "PUT", "secrets/canary", `{"value":`, http.StatusBadRequest, "BadParameter", ""},
		{"value of the wrong type", "PUT", "secrets/canary", `{"value":5}`, http.StatusBadRequest, "BadParameter", ""},
		{"no value", "PUT", "secrets/novalue", `{}`, http.StatusBadRequest, "BadParameter", "novalue"},
		{"JSON array", "PUT", "secrets/arr", `[1,2]`, http.StatusBadRequest, "BadParameter", "arr"},
		{"100k nested arrays", "PUT", "secrets/deep", `{"value":"x","tags":` + deep + `}`, http.StatusBadRequest, "BadParameter", "deep"},
		{"two JSON values", "PUT", "secrets/two", `{"value":"a"}{"value":"b"}`, http.StatusBadRequest, "BadParameter", "two"},
		{"invalid secret name", "PUT", "secrets/bad_name", `{"value":"x"}`, http.StatusBadRequest, "BadParameter", ""},
		{"unsupported key type", "POST", "keys/deskey/create", `{"kty":"DES"}`, http.StatusBadRequest, "BadParameter", "deskey"},
		{"key size of the wrong type", "POST", "keys/sz/create", `{"kty":"RSA","key_size":"big"}`, http.StatusBadRequest, "BadParameter", "sz"},
		{"30 MB key create", "POST", "keys/hugekey/create", `{"kty":"RSA","tags":{"a":"` + strings.Repeat("a", 30<<20) + `"}}`, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "hugekey"},
		{"sign with bad base64", "POST", "keys/k1/sign", `{"alg":"RS256","value":"!!"}`, http.StatusBadRequest, "BadParameter", ""},
		{"sign with an unknown alg", "POST", "keys/k1/sign", `{"alg":"XS999","value":"AAAA"}`, http.StatusBadRequest, "BadParameter", ""},
		// encoding/json would store these as U+FFFD: refused instead.
		{"invalid UTF-8 in a value", "PUT", "secrets/canary", "{\"value\":\"s3cr\xff\xfet\"}", http.StatusBadRequest, "BadParameter", ""},
		{"invalid UTF-8 in a new secret", "PUT", "secrets/utf", "{\"value\":\"\xc3\x28\"}", http.StatusBadRequest, "BadParameter", "utf"},
		{"UTF-8-encoded surrogate", "PUT", "secrets/utfsur", "{\"value\":\"\xed\xa0\x80\"}", http.StatusBadRequest, "BadParameter", "utfsur"},
		{"unpaired surrogate escape", "PUT", "secrets/sur", `{"value":"x\ud800y"}`, http.StatusBadRequest, "BadParameter", "sur"},
		{"reversed surrogate pair", "PUT", "secrets/sur2", `{"value":"\ude00\ud83d"}`, http.StatusBadRequest, "BadParameter", "sur2"},
		{"invalid UTF-8 in a key's tag", "POST", "keys/utfkey/create", "{\"kty\":\"RSA\",\"tags\":{\"t\":\"\x80\"}}", http.StatusBadRequest, "BadParameter", "utfkey"},
		{"invalid UTF-8 in a tag name", "PATCH", "secrets/canary", "{\"tags\":{\"\xff\":\"v\"}}", http.StatusBadRequest, "BadParameter", ""},
	}
	for _, c := range data {
		t.Run("data/"+c.name, func(t *testing.T) {
			r := do(t, e, c.method, v.url+c.path+"?api-version=7.4", v.admin, "application/json", c.body)
			if code, _ := azureError(r.Body); r.Status != c.status || code != c.code {
				t.Fatalf("%d %.300s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			v.unchanged(t, c.name, c.created)
		})
	}

	mgmt := []struct {
		name, method, body string
		status             int
		code               string
	}{
		{"30 MB PUT", "PUT", `{"location":"local","tags":{"pwned":"` + strings.Repeat("a", 30<<20) + `"}}`, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge"},
		{"30 MB PATCH", "PATCH", `{"tags":{"pwned":"` + strings.Repeat("a", 30<<20) + `"}}`, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge"},
		{"truncated JSON", "PUT", `{"location":`, http.StatusBadRequest, "InvalidRequestContent"},
		{"tags of the wrong type", "PATCH", `{"tags":5}`, http.StatusBadRequest, "InvalidRequestContent"},
		{"100k nested arrays", "PATCH", `{"tags":` + deep + `}`, http.StatusBadRequest, "InvalidRequestContent"},
		{"two JSON values", "PATCH", `{"tags":{"pwned":"1"}}{"tags":{}}`, http.StatusBadRequest, "InvalidRequestContent"},
		{"invalid UTF-8 in a tag", "PATCH", "{\"tags\":{\"pwned\":\"\xff\"}}", http.StatusBadRequest, "InvalidRequestContent"},
		{"unpaired surrogate in a tag", "PUT", `{"location":"local","tags":{"pwned":"\udfff"}}`, http.StatusBadRequest, "InvalidRequestContent"},
	}
	for _, c := range mgmt {
		t.Run("mgmt/"+c.name, func(t *testing.T) {
			r := do(t, e, c.method, v.armURL+"?api-version=2023-07-01", v.mgmtTok, "application/json", c.body)
			if code, _ := azureError(r.Body); r.Status != c.status || code != c.code {
				t.Fatalf("%d %.300s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			v.unchanged(t, c.name, "")
		})
	}

	// Control: valid non-ASCII text, raw or as escapes (a surrogate pair
	// included), is stored exactly on both planes.
	want := "é€😀\U0001F600"
	if r := do(t, e, "PUT", v.url+"secrets/unicode?api-version=7.4", v.admin, "application/json", `{"value":"é€😀\ud83d\ude00"}`); r.Status != http.StatusOK {
		t.Fatalf("valid UTF-8: %d %s", r.Status, r.Body)
	}
	r := do(t, e, "GET", v.url+"secrets/unicode?api-version=7.4", v.admin, "", "")
	var got struct{ Value string }
	if json.Unmarshal([]byte(r.Body), &got) != nil || got.Value != want {
		t.Fatalf("stored %q, sent %q", got.Value, want)
	}
	if r := do(t, e, "PATCH", v.armURL+"?api-version=2023-07-01", v.mgmtTok, "application/json", `{"tags":{"t":"é\ud83d\ude00"}}`); r.Status != http.StatusOK {
		t.Fatalf("valid tag: %d %s", r.Status, r.Body)
	}
	if tags := v.tags(t); tags["t"] != "é\U0001F600" {
		t.Fatalf("tags %q", tags)
	}
}
