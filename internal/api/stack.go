package api

// growStack makes the calling goroutine's stack big enough, in one step,
// for the deepest request path, so that it does not grow in two or three
// steps later on.
//
// Go's HTTP/2 server runs every request's handler on a new goroutine,
// which starts with a 2 KiB stack; a secret read needs 4–8 KiB and a key
// operation more, so each request used to copy its stack twice, deep in
// the handler (runtime.newstack and copystack, with a stack-map lookup for
// every frame: ≈ 10 % of the server's CPU per HTTP/2 request, see
// docs/PERFORMANCE.md). A frame of 8 KiB placed here, where the stack is
// still shallow, makes the runtime allocate a 16 KiB stack at once (from
// the per-P stack cache) and copy the few frames above it. HTTP/1.1 needs
// none of this: its handler runs on the connection's goroutine, whose
// stack has grown with the first request. The technique is CockroachDB's
// growstack.Grow.
//
//go:noinline
func growStack() byte {
	var buf [8 << 10]byte
	return touchStack(buf[:])
}

// touchStack keeps growStack's frame from being optimized away; buf does
// not escape.
//
//go:noinline
func touchStack(b []byte) byte { return b[len(b)-1] }
