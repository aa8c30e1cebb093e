package console

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html static/*
var files embed.FS

var funcs = template.FuncMap{
	"unix": func(v any) string {
		var n int64
		switch x := v.(type) {
		case float64:
			n = int64(x)
		case int64:
			n = x
		case nil:
			return ""
		}
		if n == 0 {
			return ""
		}
		return time.Unix(n, 0).UTC().Format("2006-01-02 15:04 UTC")
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k] = kv[i+1]
		}
		return m
	},
	"last": func(s string) string {
		s = strings.TrimSuffix(s, "/")
		return s[strings.LastIndex(s, "/")+1:]
	},
}

// templates: each page file defines "content" and is joined with the layout.
var templates = func() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	names, _ := fs.Glob(files, "templates/*.html")
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		out[base] = template.Must(template.Must(layout.Clone()).ParseFS(files, n))
	}
	return out
}()

// view is what every page template gets.
type view struct {
	Title    string
	User     string
	CSRF     string
	Nav      []navItem
	Vault    string
	VaultNav []navItem
	Flash    string
	Error    *apiError
	Data     any
}

func (q *req) render(name string, status int, title string, data any) error {
	v := view{Title: title, Data: data, Vault: q.p["vault"]}
	if q.s != nil {
		q.s.mu.Lock()
		v.User, v.CSRF, v.Flash = q.s.name, q.s.csrf, q.s.flash
		q.s.flash = ""
		q.s.mu.Unlock()
		v.Nav = q.nav(Global, "")
		if v.Vault != "" {
			v.VaultNav = q.nav(Vault, v.Vault)
		}
	}
	if e, ok := data.(*apiError); ok {
		v.Error = e
	}
	var buf bytes.Buffer
	t := templates[name]
	if t == nil {
		t = templates["error"]
	}
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		q.w.WriteHeader(http.StatusInternalServerError)
		q.w.Write([]byte("The page could not be rendered."))
		return nil
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	q.w.Write(buf.Bytes())
	return nil
}

// errorTable is the console's one error table: how a failed call (the
// surface's status and code) is explained to a person.
var errorTable = map[int]string{
	http.StatusBadRequest:          "The request was not accepted",
	http.StatusUnauthorized:        "Sign in again",
	http.StatusForbidden:           "You are not allowed to do this",
	http.StatusNotFound:            "Not found",
	http.StatusMethodNotAllowed:    "Not allowed here",
	http.StatusConflict:            "Conflict",
	http.StatusTooManyRequests:     "Too many requests: wait a moment and retry",
	http.StatusServiceUnavailable:  "Keyward is unavailable: retry shortly",
	http.StatusBadGateway:          "Something went wrong",
	http.StatusInternalServerError: "Something went wrong",
}

type errorView struct {
	*apiError
	Heading string
	Back    string
}

func (q *req) renderError(err error) {
	e, ok := err.(*apiError)
	if !ok {
		e = &apiError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "The console could not finish this request."}
	}
	if e.Status == http.StatusUnauthorized {
		// An expired sign-in ends the session.
		q.c.endSession(q.w, q.r)
		q.s = nil
	}
	q.ev.Reason = e.Code
	heading := errorTable[e.Status]
	if heading == "" {
		heading = "The request failed"
	}
	back := "/ui/"
	if v := q.p["vault"]; v != "" && q.s != nil {
		back = "/ui/vaults/" + v + "/secrets"
	}
	q.render("error", e.Status, heading, &errorView{apiError: e, Heading: heading, Back: back})
}

// redirect ends a successful POST (post/redirect/get) with a message shown
// once on the next page (kept in the session, not in the URL).
func (q *req) redirect(to, flash string) error {
	if q.s != nil && flash != "" {
		q.s.mu.Lock()
		q.s.flash = flash
		q.s.mu.Unlock()
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
	return nil
}

func serveAsset(q *req) error {
	name := q.p["file"]
	b, err := files.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "..") {
		return &apiError{Status: http.StatusNotFound, Code: "NotFound", Message: "No such file."}
	}
	h := q.w.Header()
	h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	h.Set("Cache-Control", "public, max-age=3600")
	q.w.Write(b)
	return nil
}
