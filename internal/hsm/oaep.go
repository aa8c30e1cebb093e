package hsm

import (
	"crypto/subtle"
	"encoding/binary"
	"hash"

	"github.com/keyward/keyward/internal/keys"
)

// oaepDecode removes EME-OAEP padding (RFC 8017 §7.1.2 step 3) from em, the
// k-byte result of a raw RSA decryption, with an empty label. It runs in
// time independent of em's contents (the construction of crypto/rsa), and
// every failure is exactly keys.ErrDecryption. em is overwritten.
func oaepDecode(h hash.Hash, k int, em []byte) ([]byte, error) {
	hLen := h.Size()
	if len(em) != k || k < 2*hLen+2 {
		return nil, keys.ErrDecryption
	}
	h.Reset()
	lHash := h.Sum(nil) // empty label
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed := em[1 : hLen+1]
	db := em[hLen+1:]
	mgf1XOR(seed, h, db)
	mgf1XOR(db, h, seed)
	lHashGood := subtle.ConstantTimeCompare(lHash, db[:hLen])

	// The rest of db is zero or more 0x00 bytes, one 0x01, the message.
	lookingForIndex, index, invalid := 1, 0, 0
	rest := db[hLen:]
	for i := range rest {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHashGood&^invalid&^lookingForIndex != 1 {
		return nil, keys.ErrDecryption
	}
	return append([]byte(nil), rest[index+1:]...), nil
}

// mgf1XOR XORs out with MGF1(seed) (RFC 8017 B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}
