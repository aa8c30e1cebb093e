package securitydomain_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/keyward/keyward/internal/securitydomain"
)

func TestSplitCombineEveryQuorum(t *testing.T) {
	secret := make([]byte, 32)
	for trial := 0; trial < 50; trial++ {
		rand.Read(secret)
		shares, err := securitydomain.Split(secret, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		for a := 0; a < 5; a++ {
			for b := a + 1; b < 5; b++ {
				for c := b + 1; c < 5; c++ {
					got, err := securitydomain.Combine([][]byte{shares[c], shares[a], shares[b]})
					if err != nil || !bytes.Equal(got, secret) {
						t.Fatalf("shares %d,%d,%d: %x %v", a, b, c, got, err)
					}
				}
			}
		}
		// Two shares are below the quorum: they give some other value
		// (almost always), never the secret with certainty.
		if got, err := securitydomain.Combine(shares[:2]); err == nil && bytes.Equal(got, secret) && trial > 5 {
			t.Logf("two shares happened to interpolate the secret in trial %d", trial)
		}
	}
	if _, err := securitydomain.Combine([][]byte{{0, 1}, {0, 1}}); !errors.Is(err, securitydomain.ErrInvalid) {
		t.Errorf("duplicate point: %v", err)
	}
}

func rsaKeys(t *testing.T, n int) ([]*rsa.PrivateKey, []securitydomain.Custodian) {
	var privs []*rsa.PrivateKey
	var cs []securitydomain.Custodian
	for i := 0; i < n; i++ {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, k)
		cs = append(cs, securitydomain.Custodian{Key: &k.PublicKey, X5t256: fmt.Sprint("c", i)})
	}
	return privs, cs
}

func TestDownloadRecoverUpload(t *testing.T) {
	privs, cs := rsaKeys(t, 4)
	secret := bytes.Repeat([]byte{0x42}, 48)
	doc, err := securitydomain.New(secret, cs[:3], 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(doc)
	doc2, err := securitydomain.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := securitydomain.Recover(doc2, []*rsa.PrivateKey{privs[2], privs[0]})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Recover with 2 of 3: %v", err)
	}
	if _, err := securitydomain.Recover(doc2, []*rsa.PrivateKey{privs[1]}); !errors.Is(err, securitydomain.ErrInvalid) {
		t.Errorf("Recover with 1 of 3: %v", err)
	}
	if _, err := securitydomain.Recover(doc2, []*rsa.PrivateKey{privs[3], privs[3]}); !errors.Is(err, securitydomain.ErrInvalid) {
		t.Errorf("Recover with a stranger's key: %v", err)
	}
	transfer := privs[3]
	up, err := securitydomain.ForUpload(got, &transfer.PublicKey, "t")
	if err != nil {
		t.Fatal(err)
	}
	back, err := securitydomain.OpenUpload(up, transfer)
	if err != nil || !bytes.Equal(back, secret) {
		t.Fatalf("OpenUpload: %v", err)
	}
	if _, err := securitydomain.OpenUpload(up, privs[0]); !errors.Is(err, securitydomain.ErrInvalid) {
		t.Errorf("OpenUpload with another key: %v", err)
	}
	for _, bad := range [][]securitydomain.Custodian{cs[:2], append(append(append([]securitydomain.Custodian{}, cs...), cs...), cs...)[:11]} {
		if _, err := securitydomain.New(secret, bad, 2); err == nil {
			t.Errorf("New with %d custodians succeeded", len(bad))
		}
	}
}

// FuzzCombine: arbitrary shares never panic; the result is either
// ErrInvalid or half the share length.
func FuzzCombine(f *testing.F) {
	f.Add([]byte{2, 5, 4, 7}, []byte{4, 1, 6, 0})
	f.Add([]byte{0, 0}, []byte{0, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		out, err := securitydomain.Combine([][]byte{a, b})
		if err != nil {
			if !errors.Is(err, securitydomain.ErrInvalid) {
				t.Fatal(err)
			}
			return
		}
		if len(out) != len(a)/2 {
			t.Fatalf("len %d from %d", len(out), len(a))
		}
	})
}

// FuzzParse: any bytes either parse or are ErrInvalid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"EncData":{"data":[{"compact_jwe":"a.b.c.d.e","tag":"t"}],"kdf":"sp108_kdf"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := securitydomain.Parse(raw); err != nil && !errors.Is(err, securitydomain.ErrInvalid) {
			t.Fatal(err)
		}
	})
}
