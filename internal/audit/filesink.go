package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

// FileSink appends events as JSON lines to a file and chains them.
//
// Concurrent Writes are group-written: each adds its event to the pending
// batch, and one of them encodes and writes the whole batch with a single
// write(2) while the others wait for it, so a busy server makes one system
// call per batch instead of one per request. Every Write still returns only
// once its own line is in the file.
//
// Tamper evidence (chain.go): the writer gives each event the node's name,
// the next sequence number and the SHA-256 of the line before it, so the
// lines form one hash chain per node that continues across restarts and
// rotated files. Every CheckpointEvery events, and whenever Checkpoint is
// called (the server does every CheckpointInterval and at shutdown), a
// signed checkpoint (node, sequence, chain head, time) is appended to the
// checkpoint file beside the log, PATH.checkpoints. Encoding and hashing
// happen in the one writer of a batch, so they add no lock of their own.
//
// The file holds only whole lines. A batch that is written only in part (a
// full disk makes write(2) short) is cut off again: the file is truncated
// back to where the batch began, every Write of that batch fails (the
// caller refuses the request it was auditing), and the chain continues from
// the last line that is in the file. If the cut fails too, the next batch
// starts with a newline, so that the torn line stands alone and the lines
// after it stay readable; the same holds for a file that a crash left
// ending mid-line.
type FileSink struct {
	path string
	opt  FileOptions

	mu       sync.Mutex
	cond     sync.Cond // signalled when a batch has been written
	f        file
	pending  *batch // events not yet handed to write(2)
	writing  bool   // a batch (or checkpoint) is being written
	spareBuf []byte // the buffer of the last written batch, for reuse
	// spareEvents is the event slice of the last written batch, for reuse.
	spareEvents []*Event
	torn        bool   // the file does not end with a newline: start the next batch on a fresh line
	failures    uint64 // batches that failed to be written
	size        int64  // bytes in the current file
	opened      time.Time

	seq     int64    // sequence number of the last line in the file
	head    [32]byte // SHA-256 of that line
	ckptSeq int64    // sequence the last checkpoint covers
	signer  ed25519.PrivateKey
}

// FileOptions configure a FileSink. The zero value writes one file that
// never rotates, does not fsync and checkpoints only when asked.
type FileOptions struct {
	// Node names this node's chain (HA: every node keeps its own).
	Node string
	// MaxBytes and MaxAge rotate the file: when it has reached MaxBytes,
	// or is older than MaxAge, it is renamed to PATH.{UTC time}-{last seq}
	// before the next batch and a new one begun; the chain continues.
	// Zero: never.
	MaxBytes int64
	MaxAge   time.Duration
	// Fsync "batch" syncs the file after every batch before any of its
	// Writes returns; "" or "none" leaves it to the OS.
	Fsync string
	// CheckpointEvery writes a checkpoint after this many events; 0: 1000.
	CheckpointEvery int64
	// Clock stamps checkpoints and ages files; nil: the real clock.
	Clock clock.Clock
}

// file is what FileSink needs of an *os.File opened for appending.
type file interface {
	io.Writer
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Sync() error
	Close() error
}

// batch is the events one write(2) carries and its outcome.
type batch struct {
	events []*Event
	errs   []error // per event: could not be encoded
	done   bool
	err    error
}

// OpenFile opens (creating, mode 0600) the audit log at path for appending,
// with default options.
func OpenFile(path string) (*FileSink, error) { return OpenFileWith(path, FileOptions{}) }

// OpenFileWith opens the audit log at path for appending and picks up its
// chain where the last line (of it, or of its newest rotated file) left it.
func OpenFileWith(path string, opt FileOptions) (*FileSink, error) {
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = 1000
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	torn, err := endsTorn(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	s := newFileSink(f, torn)
	s.path, s.opt = path, opt
	s.opened = opt.Clock.Now()
	if fi, err := f.Stat(); err == nil {
		s.size = fi.Size()
	}
	if err := s.recoverChain(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func newFileSink(f file, torn bool) *FileSink {
	s := &FileSink{f: f, pending: &batch{}, torn: torn, opt: FileOptions{CheckpointEvery: 1000, Clock: clock.Real{}}}
	s.cond.L = &s.mu
	return s
}

// recoverChain reads the last whole line of the log (or, when the log is
// empty, of its newest rotated file) and continues its chain, and the last
// checkpoint, so that one is not repeated.
func (s *FileSink) recoverChain() error {
	files := append(rotatedFiles(s.path), s.path)
	for i := len(files) - 1; i >= 0; i-- {
		line, err := lastLine(files[i])
		if err != nil {
			return err
		}
		if line == nil {
			continue
		}
		var c chainFields
		if err := unmarshalChain(line, &c); err == nil && c.Seq > 0 {
			s.seq, s.head = c.Seq, sha256.Sum256(line)
		} else {
			// A line written before events were chained: the new chain
			// starts after it, bound to it.
			s.head = sha256.Sum256(line)
		}
		break
	}
	if cp, err := lastLine(s.path + CheckpointSuffix); err == nil && cp != nil {
		if c, err := parseCheckpoint(cp); err == nil && c.Node == s.opt.Node && c.Seq <= s.seq {
			s.ckptSeq = c.Seq
		}
	}
	return nil
}

// CheckpointSuffix names the checkpoint file beside a log: PATH.checkpoints.
const CheckpointSuffix = ".checkpoints"

// rotatedFiles lists path's rotated files, oldest first.
func rotatedFiles(path string) []string {
	m, _ := filepath.Glob(path + ".2*")
	var out []string
	for _, p := range m {
		if !strings.HasSuffix(p, CheckpointSuffix) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// lastLine returns the last newline-terminated line of the file at path
// (without the newline), nil when it has none.
func lastLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	for window := int64(64 << 10); ; window *= 4 {
		off := max(fi.Size()-window, 0)
		buf := make([]byte, fi.Size()-off)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, err
		}
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			if off == 0 {
				return nil, nil
			}
			continue
		}
		start := bytes.LastIndexByte(buf[:end], '\n') + 1
		if start == 0 && off > 0 {
			continue
		}
		return buf[start:end], nil
	}
}

// endsTorn reports whether f is non-empty and does not end with a newline.
func endsTorn(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return false, err
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// SetSigner sets the key that signs checkpoints (the server's, kept in the
// barrier and given to the sink after unseal); nil stops signing, and
// checkpoints wait until a key is set again.
func (s *FileSink) SetSigner(key ed25519.PrivateKey) {
	s.mu.Lock()
	s.signer = key
	s.mu.Unlock()
}

// SignerPublic is the public half of the checkpoint key; nil when none is set.
func (s *FileSink) SignerPublic() ed25519.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer == nil {
		return nil
	}
	return s.signer.Public().(ed25519.PublicKey)
}

// Failures returns how many batches could not be written (each failed every
// Write it carried).
func (s *FileSink) Failures() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// Head returns the sequence number and hash of the last line written.
func (s *FileSink) Head() (int64, [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, s.head
}

var errSinkClosed = errors.New("audit: sink closed")

// errRecorded marks, in a batch whose write stopped part-way, an event
// whose line is wholly in the file.
var errRecorded = errors.New("recorded")

// Write appends e as one line. The line reaches the file (not only a
// buffer) before Write returns. The writer sets e's Node and Seq (Prev is
// written to the line only).
func (s *FileSink) Write(ctx context.Context, e *Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errSinkClosed
	}
	b := s.pending
	i := len(b.events)
	b.events = append(b.events, e)
	for !b.done {
		if s.writing {
			s.cond.Wait()
			continue
		}
		if len(b.events) == 1 && mayLinger(ctx) {
			s.linger()
			continue // b may have been written meanwhile
		}
		s.writeBatch()
	}
	if b.errs != nil && b.errs[i] != nil {
		if b.errs[i] == errRecorded {
			return nil
		}
		return b.errs[i]
	}
	return b.err
}

// linger lets the other runnable goroutines run once before a batch of
// one event is written, as the writer, so that the requests that are a
// moment from their own Write join this batch instead of each making its
// own write(2). Without it a busy server on few cores wrote one line per
// system call (/proc/PID/io: ~1 audit write per request at 16 concurrent
// secret reads on 2 cores): a writer's batch closed as soon as it began,
// because the other requests were still running on the same cores. The
// cost is one trip through the scheduler (a fraction of a µs when nothing
// else is runnable). s.mu is held on entry and exit.
func (s *FileSink) linger() {
	s.writing = true
	s.mu.Unlock()
	runtime.Gosched()
	s.mu.Lock()
	s.writing = false
	if len(s.pending.events) > 0 {
		s.writeBatch()
	}
	s.cond.Broadcast()
}

// writeBatch encodes, chains and writes the pending batch; s.mu is held on
// entry and exit but not while encoding and in the system call, so other
// Writes can fill the next batch.
func (s *FileSink) writeBatch() {
	b := s.pending
	s.pending = &batch{events: s.spareEvents[:0]}
	s.spareEvents = nil
	s.writing = true
	f := s.f
	buf := s.spareBuf[:0]
	s.spareBuf = nil
	torn := s.torn
	seq, head := s.seq, s.head
	rotate := s.rotateDue()
	s.mu.Unlock()

	if torn {
		buf = append(buf, '\n')
	}
	lines := 0
	for i, e := range b.events {
		// Node, Seq and Prev are the last fields of a line: encoded
		// without Prev, then Prev appended, the line is what json.Marshal
		// gives for the event with Prev set, with no string to allocate.
		e.Node, e.Seq, e.Prev = s.opt.Node, seq+1, ""
		start := len(buf)
		var err error
		if buf, err = e.AppendJSON(buf); err != nil {
			buf = buf[:start]
			if b.errs == nil {
				b.errs = make([]error, len(b.events))
			}
			b.errs[i] = err
			continue
		}
		buf = appendPrev(buf[:len(buf)-1], &head)
		head = sha256.Sum256(buf[start:])
		seq++
		lines++
		buf = append(buf, '\n')
	}
	err := errSinkClosed
	if f != nil && rotate && !torn {
		// A failed rotation keeps writing the old file: nothing is lost.
		if nf, rerr := s.rotate(); rerr == nil {
			f = nf
		}
	}
	written, partial := int64(0), false
	if f != nil {
		err = nil
		if lines > 0 || torn {
			var n int
			n, err = f.Write(buf)
			switch {
			case err == nil && n < len(buf):
				err = io.ErrShortWrite
				fallthrough
			case err != nil && n > 0:
				// Cut back, the file is as before this batch; else torn.
				if !cutBack(f, n) {
					torn = true
					written = int64(n)
					// The lines wholly written stay: their events are
					// recorded, and the chain goes on from the last.
					seq, head = s.seq, s.head
					if b.errs == nil {
						b.errs = make([]error, len(b.events))
					}
					rest := buf[:n]
					if torn {
						rest = rest[1:]
					}
					for i := range b.events {
						if b.errs[i] != nil {
							continue
						}
						if end := bytes.IndexByte(rest, '\n'); end >= 0 {
							seq, head = b.events[i].Seq, sha256.Sum256(rest[:end])
							rest = rest[end+1:]
							b.errs[i] = errRecorded
						} else {
							rest = nil
							b.errs[i] = fmt.Errorf("audit: writing %d events: %w", lines, err)
						}
					}
					err, partial = nil, true
				}
			case err == nil:
				torn = false
				written = int64(n)
				if s.opt.Fsync == "batch" {
					if serr := f.Sync(); serr != nil {
						err = serr
						if cutBack(f, n) {
							written = 0
						} else {
							torn = true
						}
					}
				}
			}
		}
		if err != nil {
			err = fmt.Errorf("audit: writing %d events: %w", lines, err)
		}
	}
	s.mu.Lock()
	s.size += written
	if err == nil {
		s.seq, s.head = seq, head
	}
	var ckpt *checkpointJob
	if err == nil && s.signer != nil && s.seq-s.ckptSeq >= s.opt.CheckpointEvery {
		ckpt = s.prepareCheckpoint()
	}
	s.torn = torn
	if err != nil || partial {
		s.failures++
	}
	b.done, b.err = true, err
	if cap(b.events) <= 4096 {
		// The waiters read only done and the errors from now on.
		s.spareEvents = b.events[:0]
	}
	b.events = nil
	if cap(buf) <= 1<<20 {
		s.spareBuf = buf[:0]
	}
	s.cond.Broadcast()
	if ckpt != nil {
		// Still the writer: sign and append the checkpoint with the
		// batch's Writes already released.
		s.mu.Unlock()
		cerr := ckpt.write()
		s.mu.Lock()
		if cerr == nil {
			s.ckptSeq = ckpt.seq
		}
	}
	s.writing = false
	s.cond.Broadcast()
}

// appendPrev appends `,"prev":"{hex head}"}` to an encoded event whose
// closing brace was cut off.
func appendPrev(b []byte, head *[32]byte) []byte {
	b = append(b, `,"prev":"`...)
	n := len(b)
	b = append(b, make([]byte, 64)...)
	hex.Encode(b[n:], head[:])
	return append(b, '"', '}')
}

// rotateDue reports whether the current file should be rotated before the
// next batch. s.mu is held.
func (s *FileSink) rotateDue() bool {
	if s.path == "" || s.size == 0 {
		return false
	}
	if s.opt.MaxBytes > 0 && s.size >= s.opt.MaxBytes {
		return true
	}
	return s.opt.MaxAge > 0 && s.opt.Clock.Now().Sub(s.opened) >= s.opt.MaxAge
}

// rotate renames the log to PATH.{UTC time} and opens a new one; only the
// writer calls it.
func (s *FileSink) rotate() (file, error) {
	now := s.opt.Clock.Now().UTC()
	s.mu.Lock()
	last := s.seq
	s.mu.Unlock()
	// The name sorts by time, then by the last sequence number it holds.
	dst := fmt.Sprintf("%s.%s-%016d", s.path, now.Format("20060102T150405.000000000Z"), last)
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("audit: %s exists", dst)
	}
	if err := os.Rename(s.path, dst); err != nil {
		return nil, err
	}
	nf, err := os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		os.Rename(dst, s.path)
		return nil, err
	}
	s.mu.Lock()
	old := s.f
	s.f, s.size, s.opened = nf, 0, now
	s.mu.Unlock()
	old.Sync()
	old.Close()
	return nf, nil
}

// cutBack removes the n bytes a short write appended to f. The file is
// opened for appending and only this sink writes it, so they are its last
// n bytes. It reports whether the file again ends with a whole line.
func cutBack(f file, n int) bool {
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(n) {
		return false
	}
	return f.Truncate(fi.Size()-int64(n)) == nil
}

// Checkpoint writes a signed checkpoint of the chain head now, if events
// were written since the last one and a signing key is set.
func (s *FileSink) Checkpoint() error {
	s.mu.Lock()
	for s.writing {
		s.cond.Wait()
	}
	if s.f == nil || s.signer == nil || s.seq == s.ckptSeq || s.path == "" {
		s.mu.Unlock()
		return nil
	}
	s.writing = true
	c := s.prepareCheckpoint()
	s.mu.Unlock()
	err := c.write()
	s.mu.Lock()
	if err == nil {
		s.ckptSeq = c.seq
	}
	s.writing = false
	s.cond.Broadcast()
	s.mu.Unlock()
	return err
}

// checkpointJob is a checkpoint to sign and append outside s.mu.
type checkpointJob struct {
	path string
	cp   Checkpoint
	key  ed25519.PrivateKey
	seq  int64
	sync bool
}

func (s *FileSink) prepareCheckpoint() *checkpointJob {
	return &checkpointJob{path: s.path + CheckpointSuffix, key: s.signer, seq: s.seq, sync: true,
		cp: Checkpoint{Node: s.opt.Node, Seq: s.seq, Head: hex.EncodeToString(s.head[:]), Time: s.opt.Clock.Now().UTC()}}
}

func (c *checkpointJob) write() error {
	line, err := SignCheckpoint(c.cp, c.key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil && c.sync {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Close writes what is pending, syncs and closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	for s.writing || len(s.pending.events) > 0 {
		if s.writing {
			s.cond.Wait()
			continue
		}
		s.writeBatch()
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	return err
}
