package mhsm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// memStore is a BlobStore in memory.
type memStore map[string][]byte

func (m memStore) Put(_ context.Context, name string, data []byte) error {
	m[name] = data
	return nil
}

func (m memStore) Get(_ context.Context, name string) ([]byte, error) {
	if b, ok := m[name]; ok {
		return b, nil
	}
	return nil, errors.New("blob storage answered 404 BlobNotFound")
}

func (m memStore) URI() string { return "mem://" }

// FuzzOpenBackup feeds openBackup any bytes as a backup blob (they come
// from the customer's storage). Oracle: no panic; an input opens only if
// it is sealed under the pool's backup key (the seeds are, their
// mutations almost never are), and every refusal is an InvalidBackup.
func FuzzOpenBackup(f *testing.F) {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	k, _ := backupKey(secret)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	for _, plain := range []string{`[]`, `["eyJ4IjoxfQ=="]`, `{}`, `[1]`} {
		raw, _ := json.Marshal(backupFile{Version: 1, Pool: "p", Created: time.Unix(0, 0).UTC(), Data: g.Seal(nil, nil, []byte(plain), backupAAD)})
		f.Add(raw)
	}
	f.Add([]byte(`{"version":1,"data":""}`))
	f.Add([]byte(`not json`))
	s := &Service{}
	f.Fuzz(func(t *testing.T, raw []byte) {
		recs, err := s.openBackup(context.Background(), memStore{"f/" + backupBlob: raw}, "f", secret)
		if err == nil {
			// It opened: it must be a version-1 file sealed under k.
			var bf backupFile
			if json.Unmarshal(raw, &bf) != nil || bf.Version != 1 {
				t.Fatalf("opened a file that is not a version-1 backup: %q", raw)
			}
			if _, err := g.Open(nil, nil, bf.Data, backupAAD); err != nil {
				t.Fatalf("opened data not sealed under the backup key")
			}
			_ = recs
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != "InvalidBackup" {
			t.Fatalf("refusal %v is not InvalidBackup", err)
		}
	})
}
