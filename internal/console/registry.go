package console

import (
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/keyward/keyward/internal/route"
)

// A Page is one section of the console: its routes (handlers under /ui/),
// and where it appears in the navigation. Built-in pages register
// themselves in init; a new surface (managed HSM pools, key distribution)
// adds a file with one Register call — its routes, its handlers and its
// templates — and nothing else changes.
type Page struct {
	// Key names the page in the navigation ("secrets").
	Key, Title string
	// Scope says where the page is listed: Global pages in the top
	// navigation, Vault pages in a vault's tabs (with {vault} in their
	// patterns).
	Scope Scope
	// Order sorts the navigation.
	Order int
	// Routes are the page's routes; Action "public" marks routes served
	// without a session (sign-in).
	Routes []route.Route[handler, string]
}

// Scope is where a page is listed.
type Scope int

const (
	Hidden Scope = iota
	Global
	Vault
)

var (
	regMu sync.Mutex
	pages []*Page
)

// Register adds a page. It is called from init functions.
func Register(p *Page) {
	regMu.Lock()
	defer regMu.Unlock()
	pages = append(pages, p)
	sort.SliceStable(pages, func(i, j int) bool { return pages[i].Order < pages[j].Order })
}

func registry() []*Page {
	regMu.Lock()
	defer regMu.Unlock()
	return pages
}

// compileRoutes joins every page's routes into the console's one table
// (matched by internal/route, as every surface is).
func compileRoutes() route.Table[handler, string] {
	var all []route.Route[handler, string]
	all = append(all, route.Route[handler, string]{Method: http.MethodGet, Pattern: "/ui/static/{file}", Op: "ConsoleAsset", Action: "public", Handle: serveAsset})
	for _, p := range registry() {
		all = append(all, p.Routes...)
	}
	// A literal segment wins over a parameter that could match it.
	sort.SliceStable(all, func(i, j int) bool {
		return strings.Count(all[i].Pattern, "{") < strings.Count(all[j].Pattern, "{")
	})
	return route.Compile(all)
}

type navItem struct {
	Key, Title, Href string
	Current          bool
}

func (q *req) nav(scope Scope, vault string) []navItem {
	var out []navItem
	for _, p := range registry() {
		if p.Scope != scope || len(p.Routes) == 0 {
			continue
		}
		href := "/ui/"
		switch {
		case scope == Vault:
			href = "/ui/vaults/" + vault + "/" + p.Key
		case p.Key != "vaults":
			href = "/ui/" + p.Key
		}
		out = append(out, navItem{Key: p.Key, Title: p.Title, Href: href, Current: q.page == p})
	}
	return out
}
