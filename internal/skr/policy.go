// Package skr is secure key release (CRYPTO.md §4.5): the release policy
// grammar and its evaluation over an attestation token's claims, the
// attestation authorities whose tokens Keyward trusts (issuer URL +
// pinned JWKS), and the signed release response.
//
// Policy grammar (Azure's "secure key release policy grammar", versions
// 1.0.0 to 1.0.2):
//
//	policy    = {"version": "1.0.0", "anyOf" | "allOf": [authority…]}
//	authority = {"authority": "<issuer URL>", "anyOf" | "allOf": [condition…]}
//	condition = {"claim": "<name or dotted path>", "<operator>": value}
//	          | {"anyOf" | "allOf": [condition…]}
//	operator  = equals | notEquals | less | lessOrEquals | greater | greaterOrEquals | exists
//
// An authority group applies only to a token issued by its authority.
// equals and notEquals compare strings, numbers and booleans by type and
// value; the ordering operators compare two numbers or two strings; exists
// takes a boolean. A claim name is looked up as given, then as a dotted
// path into nested objects ("x-ms-isolation-tee.x-ms-attestation-type").
package skr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Limits on a policy: Key Vault caps the release policy at 10 KiB.
const (
	MaxPolicySize = 10 << 10
	maxDepth      = 8
	maxNodes      = 256
)

// ErrPolicy means a release policy does not follow the grammar.
var ErrPolicy = errors.New("skr: invalid release policy")

// Operators.
const (
	OpEquals          = "equals"
	OpNotEquals       = "notEquals"
	OpLess            = "less"
	OpLessOrEquals    = "lessOrEquals"
	OpGreater         = "greater"
	OpGreaterOrEquals = "greaterOrEquals"
	OpExists          = "exists"
)

var operators = []string{OpEquals, OpNotEquals, OpLess, OpLessOrEquals, OpGreater, OpGreaterOrEquals, OpExists}

// Policy is a parsed release policy.
type Policy struct {
	Version string
	All     bool // allOf at the top (else anyOf)
	Groups  []Group
}

// Group is one authority's conditions.
type Group struct {
	Authority string
	Cond      Cond // a combinator
}

// Cond is a condition: a combinator (Sub non-nil) or a claim test.
type Cond struct {
	All   bool   // allOf (else anyOf), when Sub != nil
	Sub   []Cond // nil for a claim test
	Claim string
	Op    string
	Value any // string, float64 or bool
}

// ParsePolicy parses and checks a policy document.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrPolicy, MaxPolicySize)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	var top map[string]json.RawMessage
	if err := d.Decode(&top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrPolicy)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrPolicy)
	}
	p := &Policy{}
	if err := str(top["version"], &p.Version); err != nil || !slices.Contains([]string{"1.0.0", "1.0.1", "1.0.2"}, p.Version) {
		return nil, fmt.Errorf("%w: version must be \"1.0.0\" (to \"1.0.2\")", ErrPolicy)
	}
	all, list, err := combinator(top, "version")
	if err != nil {
		return nil, err
	}
	p.All = all
	nodes := 0
	for _, raw := range list {
		var g map[string]json.RawMessage
		if err := json.Unmarshal(raw, &g); err != nil || g == nil {
			return nil, fmt.Errorf("%w: an authority entry is not an object", ErrPolicy)
		}
		var grp Group
		if err := str(g["authority"], &grp.Authority); err != nil || grp.Authority == "" {
			return nil, fmt.Errorf("%w: an entry of %s has no authority", ErrPolicy, comb(all))
		}
		c, err := parseComb(g, "authority", 1, &nodes)
		if err != nil {
			return nil, err
		}
		grp.Cond = c
		p.Groups = append(p.Groups, grp)
	}
	return p, nil
}

func comb(all bool) string {
	if all {
		return "allOf"
	}
	return "anyOf"
}

func str(raw json.RawMessage, s *string) error {
	if raw == nil {
		return errors.New("missing")
	}
	return json.Unmarshal(raw, s)
}

// combinator reads exactly one of anyOf/allOf (a non-empty array) from obj,
// whose only other key may be allowed.
func combinator(obj map[string]json.RawMessage, allowed string) (bool, []json.RawMessage, error) {
	anyRaw, okAny := obj["anyOf"]
	allRaw, okAll := obj["allOf"]
	for k := range obj {
		if k != "anyOf" && k != "allOf" && (allowed == "" || k != allowed) {
			return false, nil, fmt.Errorf("%w: unknown field %.40q", ErrPolicy, k)
		}
	}
	if okAny == okAll {
		return false, nil, fmt.Errorf("%w: exactly one of anyOf and allOf is needed", ErrPolicy)
	}
	raw := anyRaw
	if okAll {
		raw = allRaw
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return false, nil, fmt.Errorf("%w: %s must be a non-empty array", ErrPolicy, comb(okAll))
	}
	return okAll, list, nil
}

func parseComb(obj map[string]json.RawMessage, allowed string, depth int, nodes *int) (Cond, error) {
	all, list, err := combinator(obj, allowed)
	if err != nil {
		return Cond{}, err
	}
	c := Cond{All: all, Sub: make([]Cond, 0, len(list))}
	for _, raw := range list {
		sub, err := parseCond(raw, depth+1, nodes)
		if err != nil {
			return Cond{}, err
		}
		c.Sub = append(c.Sub, sub)
	}
	return c, nil
}

func parseCond(raw json.RawMessage, depth int, nodes *int) (Cond, error) {
	*nodes++
	if depth > maxDepth || *nodes > maxNodes {
		return Cond{}, fmt.Errorf("%w: more than %d levels or %d conditions", ErrPolicy, maxDepth, maxNodes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Cond{}, fmt.Errorf("%w: a condition is not an object", ErrPolicy)
	}
	if _, ok := obj["claim"]; !ok {
		return parseComb(obj, "", depth, nodes)
	}
	var c Cond
	if err := str(obj["claim"], &c.Claim); err != nil || c.Claim == "" {
		return Cond{}, fmt.Errorf("%w: claim must be a non-empty string", ErrPolicy)
	}
	if len(obj) != 2 {
		return Cond{}, fmt.Errorf("%w: claim %.60q needs exactly one operator", ErrPolicy, c.Claim)
	}
	for k, v := range obj {
		if k == "claim" {
			continue
		}
		if !slices.Contains(operators, k) {
			return Cond{}, fmt.Errorf("%w: unknown operator %.40q", ErrPolicy, k)
		}
		c.Op = k
		val, err := scalar(v)
		if err != nil {
			return Cond{}, fmt.Errorf("%w: %s takes a string, a finite number or a boolean", ErrPolicy, k)
		}
		_, isBool := val.(bool)
		if k == OpExists && !isBool {
			return Cond{}, fmt.Errorf("%w: exists takes true or false", ErrPolicy)
		}
		if isOrder(k) && isBool {
			return Cond{}, fmt.Errorf("%w: %s takes a number or a string", ErrPolicy, k)
		}
		c.Value = val
	}
	return c, nil
}

// scalar decodes a JSON string, boolean or finite number (as float64).
func scalar(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case json.Number:
		f, err := strconv.ParseFloat(x.String(), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("not a finite number")
		}
		return f, nil
	}
	return nil, errors.New("not a scalar")
}

func isOrder(op string) bool {
	return op == OpLess || op == OpLessOrEquals || op == OpGreater || op == OpGreaterOrEquals
}

// MarshalJSON writes the policy in its canonical form.
func (p *Policy) MarshalJSON() ([]byte, error) {
	groups := make([]map[string]any, 0, len(p.Groups))
	for _, g := range p.Groups {
		m := g.Cond.wire()
		m["authority"] = g.Authority
		groups = append(groups, m)
	}
	return json.Marshal(map[string]any{"version": p.Version, comb(p.All): groups})
}

func (c Cond) wire() map[string]any {
	if c.Sub == nil {
		return map[string]any{"claim": c.Claim, c.Op: c.Value}
	}
	subs := make([]map[string]any, 0, len(c.Sub))
	for _, s := range c.Sub {
		subs = append(subs, s.wire())
	}
	return map[string]any{comb(c.All): subs}
}

// Decision is the outcome of evaluating a policy.
type Decision struct {
	Allowed bool
	// Reason says why a release is denied: no group for the issuer, or
	// the failing conditions. It names claims and the policy's values,
	// never the token's values.
	Reason string
}

// Evaluate decides whether a token of issuer with claims (its decoded
// JSON payload) satisfies p.
func (p *Policy) Evaluate(issuer string, claims map[string]any) Decision {
	matched := false
	var reasons []string
	for _, g := range p.Groups {
		if !sameAuthority(g.Authority, issuer) {
			if p.All {
				return Decision{Reason: fmt.Sprintf("the policy requires a token from authority %.200s", g.Authority)}
			}
			continue
		}
		matched = true
		ok, why := g.Cond.eval(claims)
		switch {
		case ok && !p.All:
			return Decision{Allowed: true}
		case !ok && p.All:
			return Decision{Reason: why}
		case !ok:
			reasons = append(reasons, why)
		}
	}
	if p.All {
		return Decision{Allowed: true}
	}
	if !matched {
		return Decision{Reason: "no group of the policy names the token's issuer as its authority"}
	}
	return Decision{Reason: strings.Join(reasons, "; ")}
}

func sameAuthority(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}

func (c Cond) eval(claims map[string]any) (bool, string) {
	if c.Sub == nil {
		return c.test(claims)
	}
	var whys []string
	for _, s := range c.Sub {
		ok, why := s.eval(claims)
		if c.All && !ok {
			return false, why
		}
		if !c.All && ok {
			return true, ""
		}
		whys = append(whys, why)
	}
	if c.All {
		return true, ""
	}
	return false, "none of (" + strings.Join(whys, "; ") + ")"
}

// Lookup finds a claim by its name, else by a dotted path.
func Lookup(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	cur := any(claims)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (c Cond) test(claims map[string]any) (bool, string) {
	v, present := Lookup(claims, c.Claim)
	if c.Op == OpExists {
		if present == c.Value.(bool) {
			return true, ""
		}
		return false, fmt.Sprintf("claim %.80q: exists is %v", c.Claim, present)
	}
	if !present {
		return false, fmt.Sprintf("claim %.80q is missing", c.Claim)
	}
	cmp, comparable := compare(v, c.Value)
	var ok bool
	switch c.Op {
	case OpEquals:
		ok = comparable && cmp == 0
	case OpNotEquals:
		ok = !comparable || cmp != 0
	case OpLess:
		ok = comparable && cmp < 0
	case OpLessOrEquals:
		ok = comparable && cmp <= 0
	case OpGreater:
		ok = comparable && cmp > 0
	case OpGreaterOrEquals:
		ok = comparable && cmp >= 0
	}
	if ok {
		return true, ""
	}
	return false, fmt.Sprintf("claim %.80q is not %s %.80v", c.Claim, c.Op, c.Value)
}

// compare orders a claim value against a policy value of the same type
// (-1, 0, +1); false when the types differ. Booleans are equal or not
// (+1), never ordered: the grammar refuses ordering operators on them.
func compare(claim, want any) (int, bool) {
	switch w := want.(type) {
	case string:
		c, ok := claim.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(c, w), true
	case bool:
		c, ok := claim.(bool)
		if !ok {
			return 0, false
		}
		if c == w {
			return 0, true
		}
		return 1, true
	case float64:
		var f float64
		switch c := claim.(type) {
		case float64:
			f = c
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(c.String(), 64); err != nil {
				return 0, false
			}
		default:
			return 0, false
		}
		switch {
		case f < w:
			return -1, true
		case f > w:
			return 1, true
		case f == w:
			return 0, true
		}
	}
	return 0, false
}
