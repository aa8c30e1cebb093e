package acme

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestResponder(t *testing.T) {
	r := NewResponder()
	r.put("tok", "tok.thumb")
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodGet, "/.well-known/acme-challenge/tok", 200, "tok.thumb"},
		{http.MethodGet, "/.well-known/acme-challenge/other", 404, ""},
		{http.MethodPost, "/.well-known/acme-challenge/tok", 404, ""},
		{http.MethodGet, "/", 404, ""},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body {
			t.Errorf("%s %s: %d %q", tc.method, tc.path, w.Code, w.Body.String())
		}
	}
	r.remove("tok")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/acme-challenge/tok", nil))
	if w.Code != 404 {
		t.Fatal("token still served after remove")
	}
}

func TestValidate(t *testing.T) {
	if _, err := New(Config{HookURL: "http://insecure"}); err == nil {
		t.Fatal("http hook accepted")
	}
	if _, err := New(Config{HookChallenge: "tls-alpn-01"}); err == nil {
		t.Fatal("unknown hook challenge accepted")
	}
	none, _ := New(Config{})
	if none.Validate("https://acme.example/dir") == nil {
		t.Fatal("no solver: must refuse")
	}
	i, _ := New(Config{HTTP01: NewResponder(), AllowedDirectories: []string{"https://acme.example/dir"}})
	for dir, ok := range map[string]bool{
		"https://acme.example/dir":       true,
		"https://other.example/dir":      false,
		"http://acme.example/dir":        false,
		"https://user:pw@acme.example/d": false,
		"not a url":                      false,
	} {
		if err := i.Validate(dir); (err == nil) != ok {
			t.Errorf("%s: %v", dir, err)
		}
	}
}
