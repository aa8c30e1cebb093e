package console

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// Secrets: list (paging, search), versions, create, reveal on an explicit
// click, update attributes and tags, delete; deleted.go recovers and purges.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "secrets", Title: "Secrets", Scope: Vault, Order: 20, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/secrets", Op: "ConsoleSecretList", Handle: secretList},
		{Method: post, Pattern: "/ui/vaults/{vault}/secrets", Op: "ConsoleSecretSet", Handle: secretSet},
		{Method: get, Pattern: "/ui/vaults/{vault}/secrets/{name}", Op: "ConsoleSecretGet", Handle: secretPage},
		{Method: post, Pattern: "/ui/vaults/{vault}/secrets/{name}/reveal", Op: "ConsoleSecretReveal", Handle: secretReveal},
		{Method: post, Pattern: "/ui/vaults/{vault}/secrets/{name}/update", Op: "ConsoleSecretUpdate", Handle: secretUpdate},
		{Method: post, Pattern: "/ui/vaults/{vault}/secrets/{name}/delete", Op: "ConsoleSecretDelete", Handle: secretDelete},
	}})
}

type item struct {
	ID          string            `json:"id,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Attributes  struct {
		Enabled       *bool  `json:"enabled,omitempty"`
		Created       int64  `json:"created,omitempty"`
		Updated       int64  `json:"updated,omitempty"`
		Expires       int64  `json:"exp,omitempty"`
		RecoveryLevel string `json:"recoveryLevel,omitempty"`
	} `json:"attributes"`
	Managed            bool   `json:"managed,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
	RecoveryID         string `json:"recoveryId,omitempty"`
}

func (i item) Name() string {
	id := i.ID
	if id == "" {
		id = i.Kid
	}
	u, err := url.Parse(id)
	if err != nil {
		return ""
	}
	p := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(p) < 2 {
		return ""
	}
	return p[1]
}

func (i item) Version() string {
	id := i.ID
	if id == "" {
		id = i.Kid
	}
	u, _ := url.Parse(id)
	if u == nil {
		return ""
	}
	p := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(p) < 3 {
		return ""
	}
	return p[2]
}

func (i item) Enabled() bool { return i.Attributes.Enabled == nil || *i.Attributes.Enabled }

func (i item) TagString() string {
	var out []string
	for k, v := range i.Tags {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

type itemList struct {
	Value    []item `json:"value"`
	NextLink string `json:"nextLink"`
}

func skipToken(nextLink string) string {
	u, err := url.Parse(nextLink)
	if err != nil {
		return ""
	}
	return u.Query().Get("$skiptoken")
}

type listView struct {
	Items      []item
	Query      string
	Next, Kind string
}

const pageSize = 25

// listObjects lists a collection a page at a time; with a search term it
// reads on until it has a page of matches (or 20 pages).
func (q *req) listObjects(collection string) (*listView, error) {
	qs := q.r.URL.Query()
	v := &listView{Query: strings.TrimSpace(qs.Get("q")), Kind: collection}
	token := qs.Get("page")
	for range 20 {
		path := collection + "?maxresults=" + "25"
		if token != "" {
			path += "&$skiptoken=" + url.QueryEscape(token)
		}
		var l itemList
		if err := q.data(q.p["vault"], http.MethodGet, path, nil, &l); err != nil {
			return nil, err
		}
		for _, it := range l.Value {
			if v.Query == "" || strings.Contains(strings.ToLower(it.Name()), strings.ToLower(v.Query)) {
				v.Items = append(v.Items, it)
			}
		}
		token = skipToken(l.NextLink)
		if token == "" || v.Query == "" || len(v.Items) >= pageSize {
			break
		}
	}
	v.Next = token
	return v, nil
}

func secretList(q *req) error {
	v, err := q.listObjects("secrets")
	if err != nil {
		return err
	}
	return q.render("secrets", http.StatusOK, q.p["vault"]+": secrets", v)
}

var objectNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func badName() error {
	return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "A name is 1-127 letters, digits and hyphens."}
}

func parseTags(s string) map[string]string {
	tags := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k = strings.TrimSpace(k); k != "" {
			tags[k] = strings.TrimSpace(v)
		}
	}
	return tags
}

func secretSet(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	body := map[string]any{"value": f.Get("value"), "tags": parseTags(f.Get("tags"))}
	if ct := f.Get("content_type"); ct != "" {
		body["contentType"] = ct
	}
	if err := q.data(q.p["vault"], http.MethodPut, "secrets/"+name, body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/secrets/"+name, "Secret "+name+" saved.")
}

type secretView struct {
	Name     string
	Versions []item
	Current  item
	Value    string
	Revealed bool
	Version  string
}

func secretPage(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	var l itemList
	if err := q.data(q.p["vault"], http.MethodGet, "secrets/"+name+"/versions?maxresults=25", nil, &l); err != nil {
		return err
	}
	sort.Slice(l.Value, func(i, j int) bool { return l.Value[i].Attributes.Created > l.Value[j].Attributes.Created })
	v := secretView{Name: name, Versions: l.Value}
	if len(l.Value) > 0 {
		v.Current = l.Value[0]
	}
	return q.render("secret", http.StatusOK, name, &v)
}

var versionRE = regexp.MustCompile(`^[0-9a-fA-F]{0,64}$`)

func secretReveal(q *req) error {
	name, version := q.p["name"], q.r.PostForm.Get("version")
	if !objectNameRE.MatchString(name) || !versionRE.MatchString(version) {
		return badName()
	}
	var s struct {
		item
		Value string `json:"value"`
	}
	path := "secrets/" + name
	if version != "" {
		path += "/" + version
	}
	if err := q.data(q.p["vault"], http.MethodGet, path, nil, &s); err != nil {
		return err
	}
	// The value is shown once, in this response only (no-store).
	var l itemList
	if err := q.data(q.p["vault"], http.MethodGet, "secrets/"+name+"/versions?maxresults=25", nil, &l); err != nil {
		return err
	}
	sort.Slice(l.Value, func(i, j int) bool { return l.Value[i].Attributes.Created > l.Value[j].Attributes.Created })
	v := secretView{Name: name, Versions: l.Value, Current: s.item, Value: s.Value, Revealed: true, Version: s.item.Version()}
	return q.render("secret", http.StatusOK, name, &v)
}

func secretUpdate(q *req) error {
	name, f := q.p["name"], q.r.PostForm
	version := f.Get("version")
	if !objectNameRE.MatchString(name) || !versionRE.MatchString(version) || version == "" {
		return badName()
	}
	enabled := f.Get("enabled") == "on"
	body := map[string]any{"attributes": map[string]any{"enabled": enabled}, "tags": parseTags(f.Get("tags")), "contentType": f.Get("content_type")}
	if err := q.data(q.p["vault"], http.MethodPatch, "secrets/"+name+"/"+version, body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/secrets/"+name, "Secret "+name+" updated.")
}

func secretDelete(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if err := q.data(q.p["vault"], http.MethodDelete, "secrets/"+name, nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/deleted", "Secret "+name+" deleted.")
}
