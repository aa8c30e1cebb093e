package vault

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"sync"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// decodeCache keeps the decoded form of records read on the key-operation
// hot path (name records and key versions), keyed by vault ID and key.
//
// It saves JSON decoding only. Every use still reads the record from
// storage — another node may have changed it — and an entry is used only
// when the stored bytes are exactly those it was decoded from, so it
// cannot serve a stale value. Decoded values are shared between requests
// and must not be modified.
//
// Only records without secrets belong here: a key version holds the public
// key, attributes and tags; its private half is stored separately.
type decodeCache struct {
	mu  sync.RWMutex
	m   map[string]decoded
	max int
}

type decoded struct {
	raw []byte
	val any
}

func newDecodeCache(max int) *decodeCache {
	return &decodeCache{m: make(map[string]decoded), max: max}
}

func (c *decodeCache) lookup(key []byte, raw []byte) any {
	c.mu.RLock()
	e, ok := c.m[string(key)] // no allocation for the lookup
	c.mu.RUnlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil
	}
	return e.val
}

func (c *decodeCache) store(key string, raw []byte, val any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for old := range c.m { // drop an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[key] = decoded{raw: bytes.Clone(raw), val: val}
}

// clearAll empties the cache (on seal).
func (c *decodeCache) clearAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// getShared is getJSON through c: it returns a decoded value that may be
// shared with other callers, which must treat it as read-only. Keys are
// relative to a vault's view, so the cache key adds vaultID.
func getShared[T any](tx barrier.Tx, c *decodeCache, vaultID, key string) (*T, bool, error) {
	raw, err := tx.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var buf [192]byte
	ck := append(append(append(buf[:0], vaultID...), '/'), key...) // vaultID + "/" + key
	if v, ok := c.lookup(ck, raw).(*T); ok {
		return v, true, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, false, err
	}
	c.store(string(ck), raw, v)
	return v, true, nil
}

// getVersionShared is getVersion for read-only callers: the name record
// may come from s.decoded, and so may the version when shareVersion is set,
// which only versions without secrets (keys) may be.
func getVersionShared[P any](tx barrier.Tx, o objects, name, version string, shareVersion bool) (*nameRecord, *Version[P], error) {
	c := o.s.decoded
	rec, ok, err := getShared[nameRecord](tx, c, o.v.ID, o.nameKey(name))
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, notFound(o.t, name)
	}
	var vc *decodeCache
	if shareVersion {
		vc = c
	}
	ver, err := readVersion[P](tx, o, name, cmp.Or(version, rec.Latest), vc)
	if err != nil {
		return nil, nil, err
	}
	return rec, ver, nil
}
