// Package layering checks that Keyward's packages depend on each other only
// in the directions DESIGN.md draws: data flows down the request path, and
// nothing below the HTTP layer knows about HTTP.
package layering

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/keyward/keyward"

// surfaces are the packages that speak a wire format (HTTP, Azure's and
// ARM's JSON, OAuth). The domain below them never imports one: errors go up
// as errs kinds and each surface words them (STYLE.md §3).
var surfaces = []string{"internal/api", "internal/mgmt", "internal/identity", "internal/server", "internal/console", "internal/keymgmtapi"}

// domain are the packages below the surfaces: no net/http, no surface, no
// wire prose (TestNoWireProseInDomain). Packages marked later may not exist
// yet; the bans hold as soon as they do.
var domain = map[string]bool{
	"internal/vault": true, "internal/keys": true, "internal/barrier": true, "internal/storage": true,
	"internal/authz": true, "internal/errs": true, "internal/audit": true, "internal/throttle": true,
	"internal/shamir": true, "internal/clock": true,
	"internal/certificates": true, "internal/jobs": true, "internal/keymgmt": true,
	"internal/mhsm": true, "internal/securitydomain": true, "internal/quorum": true,
}

func init() {
	for pkg := range domain {
		if bans[pkg] == nil {
			bans[pkg] = map[string]string{}
		}
		bans[pkg]["net/http"] = "the domain knows nothing of HTTP; the surfaces answer (STYLE.md §3)"
		for _, s := range surfaces {
			bans[pkg][module+"/"+s] = "the domain never imports a surface: data flows down, errors go up as errs kinds"
		}
	}
	bans["internal/errs"][module+"/internal/vault"] = "errs is the bottom of the tree: every layer may use it"
	bans["internal/errs"][module+"/internal/storage"] = "errs is the bottom of the tree: every layer may use it"
	bans["internal/vault"][module+"/internal/certificates"] = "certificates use vault's object store, not the reverse"
}

// bans lists, per package (and its subpackages), imports it must not reach,
// directly or transitively, each with its reason.
var bans = map[string]map[string]string{
	"internal/route": {
		module + "/internal/authz": "every surface shares the router, identity too, which must not reach authz",
		module + "/internal/api":   "the router is below every surface",
		module + "/internal/vault": "the router knows routes, not objects",
	},
	"internal/storage": {
		"net/http":                   "storage is below the HTTP layer",
		module + "/internal/barrier": "storage never sees plaintext or keys; the barrier sits above it",
		module + "/internal/vault":   "storage knows nothing of vaults",
	},
	"internal/barrier": {
		"net/http":                 "the barrier is below the HTTP layer",
		module + "/internal/vault": "the barrier knows nothing of vault objects",
		module + "/internal/api":   "the barrier is below the HTTP layer",
		module + "/internal/authz": "the barrier does not decide access",
	},
	"internal/vault": {
		"net/http":                        "the domain knows nothing of HTTP (STYLE.md §3)",
		module + "/internal/api":          "the domain is below the wire layer",
		module + "/internal/storage/bolt": "the domain does not pick a backend",
	},
	"internal/authz": {
		"net/http":                   "decisions are pure functions",
		module + "/internal/storage": "decisions do no I/O",
		module + "/internal/barrier": "decisions do no I/O",
	},
	"internal/keys": {
		"net/http":                   "cryptography is below the HTTP layer",
		module + "/internal/storage": "keys hand material to the vault layer; they never store it",
		module + "/internal/barrier": "keys hand material to the vault layer; they never store it",
		module + "/internal/vault":   "the vault layer uses keys, not the reverse",
	},
	"internal/audit": {
		module + "/internal/vault": "audit events are typed records, not domain objects",
		module + "/internal/keys":  "nothing in the audit path may touch key material",
	},
	"internal/throttle": {
		"net/http": "token buckets are arithmetic; the api package answers 429",
	},
	"internal/shamir": {
		"net/http": "pure arithmetic",
	},
	"internal/mgmt": {
		module + "/internal/api":          "the management plane is beside api, which routes to it",
		module + "/internal/storage/bolt": "the management plane does not pick a backend",
		module + "/internal/server":       "the management plane is assembled by server, not the reverse",
	},
	"internal/jobs": {
		"net/http":                   "background work is below the HTTP layer",
		module + "/internal/vault":   "the domain runs on jobs (due queues), not the reverse",
		module + "/internal/barrier": "due queues are read through the caller's transaction, whatever it is",
		module + "/internal/storage": "due queues are read through the caller's transaction, whatever it is",
	},
	"internal/clock": {
		"net/http":                "the clock is a leaf every layer may use",
		module + "/internal/jobs": "the clock is a leaf every layer may use",
	},
	"internal/console": {
		module + "/internal/api":     "the console is a client of the pipeline, which routes to it",
		module + "/internal/authz":   "the console decides no access: the surfaces it calls as the user do (no console-only privilege path)",
		module + "/internal/vault":   "the console reaches vault objects through the data plane, as the user",
		module + "/internal/mgmt":    "the console reaches ARM through the pipeline, as the user",
		module + "/internal/barrier": "the console never reads storage",
		module + "/internal/storage": "the console never reads storage",
	},
	"internal/identity": {
		module + "/internal/api":   "the token service is beside api, which routes to it",
		module + "/internal/authz": "identity authenticates; authorization decides from its records, not the reverse",
	},
}

func root(t *testing.T) string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatal("cannot find the module root")
	}
	return dir
}

// imports returns the non-test imports of the package in dir.
func imports(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			set[strings.Trim(imp.Path.Value, `"`)] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// closure returns every package reachable from pkg within the module, plus
// the standard-library packages they import directly.
func closure(t *testing.T, rootDir, pkg string) map[string]string {
	seen := map[string]string{} // import path -> importer
	var walk func(p string)
	walk = func(p string) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		for _, imp := range imports(t, filepath.Join(rootDir, rel)) {
			if _, ok := seen[imp]; ok {
				continue
			}
			seen[imp] = p
			if strings.HasPrefix(imp, module+"/") {
				walk(imp)
			}
		}
	}
	walk(pkg)
	return seen
}

func TestLayering(t *testing.T) {
	rootDir := root(t)
	for prefix, banned := range bans {
		if exists, ok := domain[prefix]; ok && !exists {
			if _, err := os.Stat(filepath.Join(rootDir, prefix)); os.IsNotExist(err) {
				continue
			}
		}
		err := filepath.WalkDir(filepath.Join(rootDir, prefix), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(rootDir, path)
			if strings.Contains(rel, "testdata") || strings.HasSuffix(rel, "test") && rel != prefix {
				return nil // test helper packages (storagetest, pgtest) may use anything
			}
			pkg := module + "/" + filepath.ToSlash(rel)
			reach := closure(t, rootDir, pkg)
			for b, why := range banned {
				if from, ok := reach[b]; ok {
					t.Errorf("%s reaches %s (imported by %s): %s", pkg, b, from, why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClosureSeesTransitiveImports keeps the walker honest: vault reaches
// storage only through the barrier, and that must be visible.
func TestClosureSeesTransitiveImports(t *testing.T) {
	reach := closure(t, root(t), module+"/internal/vault")
	for _, want := range []string{module + "/internal/barrier", module + "/internal/storage", "crypto/aes"} {
		if _, ok := reach[want]; !ok {
			t.Errorf("closure of internal/vault misses %s", want)
		}
	}
}

// TestNoWireProseInDomain: Azure's wording (its fwlinks, its hosts) lives
// in the surfaces' error tables, not in the domain.
func TestNoWireProseInDomain(t *testing.T) {
	rootDir := root(t)
	for pkg := range domain {
		dir := filepath.Join(rootDir, pkg)
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"go.microsoft.com/fwlink", "For help resolving this issue"} {
				if strings.Contains(string(raw), w) {
					t.Errorf("%s/%s holds Azure's wire prose %q: word it in the surface's error table", pkg, name, w)
				}
			}
		}
	}
}

// splitSurfaces are surfaces whose domain and wire halves share a package:
// only the files the rule names speak HTTP; every other file is domain and
// holds to the domain's bans (no net/http, no other surface, directly or
// through what it imports).
var splitSurfaces = map[string]func(file string) bool{
	// identity: grants, principals, bindings, device sign-in and issuer
	// trust are domain; http*.go and routes.go put them on the wire.
	"internal/identity": func(f string) bool { return strings.HasPrefix(f, "http") || f == "routes.go" },
}

func TestSplitSurfaceDomainFiles(t *testing.T) {
	rootDir := root(t)
	banned := map[string]bool{"net/http": true}
	for _, s := range surfaces {
		banned[module+"/"+s] = true
	}
	for pkg, wire := range splitSurfaces {
		dir := filepath.Join(rootDir, pkg)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || wire(name) {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p := strings.Trim(imp.Path.Value, `"`)
				if banned[p] && p != module+"/"+pkg {
					t.Errorf("%s/%s imports %s: only the wire files of %s may (the domain knows nothing of HTTP)", pkg, name, p, pkg)
				}
				if !strings.HasPrefix(p, module+"/") {
					continue
				}
				for b := range banned {
					if from, ok := closure(t, rootDir, p)[b]; ok {
						t.Errorf("%s/%s reaches %s through %s (imported by %s)", pkg, name, b, p, from)
					}
				}
			}
		}
	}
}
