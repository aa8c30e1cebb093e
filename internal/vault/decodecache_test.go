package vault

import (
	"fmt"
	"testing"
)

func TestDecodeCacheServesOnlyIdenticalBytes(t *testing.T) {
	c := newDecodeCache(4)
	raw := []byte(`{"name":"k","latest":"v1"}`)
	want := &nameRecord{Name: "k", Latest: "v1"}
	c.store("a", raw, want)
	raw[0] = 'X' // the cache keeps its own copy
	if got := c.lookup([]byte("a"), []byte(`{"name":"k","latest":"v1"}`)); got != want {
		t.Fatalf("identical bytes: got %v, want the stored value", got)
	}
	if got := c.lookup([]byte("a"), []byte(`{"name":"k","latest":"v2"}`)); got != nil {
		t.Fatalf("changed bytes served a stale value: %v", got)
	}
	if got := c.lookup([]byte("b"), []byte(`{"name":"k","latest":"v1"}`)); got != nil {
		t.Fatalf("other key served: %v", got)
	}
	for i := range 10 {
		c.store(fmt.Sprint(i), []byte("{}"), &nameRecord{})
	}
	if n := len(c.m); n != 4 {
		t.Fatalf("cache holds %d entries, bound is 4", n)
	}
	c.clearAll()
	if n := len(c.m); n != 0 {
		t.Fatalf("after clearAll: %d entries", n)
	}
}
