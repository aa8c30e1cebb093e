package shamir

// An independent, deliberately naive GF(2^8) implementation used only to
// check the constant-time one: log/exp tables built from the generator 0x03
// with a branching multiply-by-x, and interpolation done the textbook way,
// one byte at a time with division (as Vault's original code did). It is
// fine for it to be slow and variable-time; it never sees real secrets.

var refExp, refLog = func() (exp [510]byte, log [256]byte) {
	xtime := func(a byte) byte { // a·x mod 0x11b, with a branch
		if a&0x80 != 0 {
			return a<<1 ^ 0x1b
		}
		return a << 1
	}
	v := byte(1)
	for i := range 255 {
		exp[i], exp[i+255] = v, v
		log[v] = byte(i)
		v = xtime(v) ^ v // v·0x03
	}
	return exp, log
}()

func refMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return refExp[int(refLog[a])+int(refLog[b])]
}

func refDiv(a, b byte) byte {
	if b == 0 {
		panic("refDiv by zero")
	}
	if a == 0 {
		return 0
	}
	return refExp[int(refLog[a])+255-int(refLog[b])]
}

// refEval evaluates c[0] + c[1]·x + … term by term with explicit powers.
func refEval(c []byte, x byte) byte {
	var y byte
	pow := byte(1)
	for _, ck := range c {
		y ^= refMul(ck, pow)
		pow = refMul(pow, x)
	}
	return y
}

// refCombine interpolates at 0 byte by byte; it assumes valid input.
func refCombine(shares [][]byte) []byte {
	n := len(shares[0]) - 1
	out := make([]byte, n)
	for k := range n {
		var acc byte
		for i, si := range shares {
			basis := byte(1)
			for j, sj := range shares {
				if i != j {
					basis = refMul(basis, refDiv(sj[n], si[n]^sj[n]))
				}
			}
			acc ^= refMul(si[k], basis)
		}
		out[k] = acc
	}
	return out
}
