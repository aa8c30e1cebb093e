package identity

import (
	"strings"
	"testing"
)

// FuzzValidateToken: arbitrary strings never validate and never panic, and
// a real token changed in any way (one byte replaced, inserted or removed,
// or a string spliced in) never validates; only the token itself does.
//
//	go test -run '^$' -fuzz FuzzValidateToken ./internal/identity
func FuzzValidateToken(f *testing.F) {
	e := newTestAuthority(f)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		f.Fatal(err)
	}
	auds := []string{testAudience, testAudience + "/"}
	if _, reason, err := e.a.Validate(tok, auds); err != nil {
		f.Fatalf("the seed token does not validate: %s", reason)
	}
	parts := strings.Split(tok, ".")

	// op: 0 arbitrary string, 1 replace byte at pos, 2 insert, 3 delete,
	// 4 splice s in at pos.
	f.Add(uint8(0), uint16(0), byte(0), "")
	f.Add(uint8(0), uint16(0), byte(0), "garbage")
	f.Add(uint8(0), uint16(0), byte(0), "a.b.c")
	f.Add(uint8(0), uint16(0), byte(0), "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.")
	f.Add(uint8(0), uint16(0), byte(0), parts[0]+"."+parts[1]+".")
	f.Add(uint8(0), uint16(0), byte(0), parts[0]+"."+parts[1])
	f.Add(uint8(0), uint16(0), byte(0), tok+"."+parts[2])
	f.Add(uint8(1), uint16(len(tok)-1), byte('B'), "")
	f.Add(uint8(1), uint16(len(parts[0])+3), byte('x'), "")
	f.Add(uint8(2), uint16(len(tok)-20), byte('\n'), "")
	f.Add(uint8(2), uint16(len(tok)), byte('='), "")
	f.Add(uint8(3), uint16(len(tok)-1), byte(0), "")
	f.Add(uint8(4), uint16(len(parts[0])), byte(0), ".")
	f.Add(uint8(4), uint16(0), byte(0), " ")

	f.Fuzz(func(t *testing.T, op uint8, pos uint16, b byte, s string) {
		var cand string
		p := int(pos)
		switch op % 5 {
		case 0:
			cand = s
		case 1:
			p %= len(tok)
			cand = tok[:p] + string([]byte{b}) + tok[p+1:]
		case 2:
			p %= len(tok) + 1
			cand = tok[:p] + string([]byte{b}) + tok[p:]
		case 3:
			p %= len(tok)
			cand = tok[:p] + tok[p+1:]
		case 4:
			p %= len(tok) + 1
			cand = tok[:p] + s + tok[p:]
		}
		c, reason, err := e.a.Validate(cand, auds)
		if cand == tok {
			if err != nil {
				t.Fatalf("the real token stopped validating: %s", reason)
			}
			return
		}
		if err == nil || c != nil {
			t.Fatalf("a changed token validated (op %d at %d): %q", op%5, p, cand)
		}
		if err != ErrInvalidToken || reason == "" {
			t.Fatalf("error %v, reason %q", err, reason)
		}
		if len(cand) > 16 && strings.Contains(reason, cand) {
			t.Fatal("reason echoes the token")
		}
	})
}
