package shamir

// Arithmetic in GF(2^8) with the AES reduction polynomial 0x11b. Addition
// and subtraction are XOR. Nothing here branches on, or indexes memory
// with, its arguments.

// gfMul returns a·b in GF(2^8): a carry-less shift-and-add multiply over the
// bits of b, least significant first, reducing a·x by 0x11b after every
// doubling. The conditional add and the reduction are masks (-(bit) is 0x00
// or 0xff), so the loop runs the same eight steps whatever a and b are; on
// amd64 the compiled loop has no branch but its counter.
func gfMul(a, b byte) byte {
	var r byte
	for range 8 {
		r ^= a & -(b & 1) // r += a if this bit of b is set
		b >>= 1
		a = a<<1 ^ 0x1b&-(a>>7) // a = a·x mod 0x11b
	}
	return r
}

// gfInv returns a⁻¹ = a^254 in GF(2^8) (the multiplicative group has order
// 255), computed with a fixed chain of squarings and multiplications. gfInv(0)
// is 0; callers never divide by zero because x coordinates are checked to be
// distinct and non-zero.
func gfInv(a byte) byte {
	a2 := gfMul(a, a)      // a^2
	a3 := gfMul(a2, a)     // a^3
	a6 := gfMul(a3, a3)    // a^6
	a7 := gfMul(a6, a)     // a^7
	a14 := gfMul(a7, a7)   // a^14
	a15 := gfMul(a14, a)   // a^15
	a30 := gfMul(a15, a15) // a^30
	a31 := gfMul(a30, a)   // a^31
	a62 := gfMul(a31, a31) // a^62
	a63 := gfMul(a62, a)   // a^63
	a126 := gfMul(a63, a63)
	a127 := gfMul(a126, a)
	return gfMul(a127, a127) // a^254
}
