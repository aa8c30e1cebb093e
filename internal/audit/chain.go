package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// This file: the hash chain, its signed checkpoints, and Verify.
//
// Every line of a node's audit log carries its sequence number and the
// SHA-256 (hex) of the line before it, byte for byte as written. A
// checkpoint line in PATH.checkpoints names a node, a sequence number, the
// SHA-256 of that event's line (the chain head) and a time, signed with
// Ed25519 by the key the barrier holds. A changed byte breaks the link to
// the next line (or the checkpoint of the last one); a deleted, inserted or
// moved line breaks the sequence; lines cut off the end are missing below
// a checkpoint. Lines after the last checkpoint can be cut off unseen: Verify
// reports them as unverifiable, never as intact.

// zeroHead is the Prev of a chain's first event.
var zeroHead = strings.Repeat("0", 64)

// chainFields are the fields Verify reads from an event line.
type chainFields struct {
	Node string `json:"node"`
	Seq  int64  `json:"seq"`
	Prev string `json:"prev"`
}

func unmarshalChain(line []byte, c *chainFields) error {
	if err := json.Unmarshal(line, c); err != nil {
		return err
	}
	if c.Seq <= 0 || len(c.Prev) != 64 {
		return errors.New("audit: line is not a chained event")
	}
	if _, err := hex.DecodeString(c.Prev); err != nil {
		return errors.New("audit: line is not a chained event")
	}
	return nil
}

// Checkpoint is a signed statement that a node's chain had reached Seq
// with Head (hex SHA-256 of that event's line) at Time.
type Checkpoint struct {
	Node string    `json:"node"`
	Seq  int64     `json:"seq"`
	Head string    `json:"head"`
	Time time.Time `json:"time"`
	// Key is the Ed25519 public key that signs (base64), so that a verifier
	// can compare it with the key it trusts.
	Key string `json:"key"`
}

// checkpointLine is a line of the checkpoint file; Sig signs the exact
// bytes of Checkpoint.
type checkpointLine struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
	Sig        string          `json:"sig"`
}

// SignCheckpoint returns the checkpoint line (no newline) for c signed
// with key.
func SignCheckpoint(c Checkpoint, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: no checkpoint signing key")
	}
	c.Key = base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return json.Marshal(checkpointLine{Checkpoint: raw, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))})
}

// KeyFingerprint is the base64 public key, as checkpoints name it.
func KeyFingerprint(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// parseCheckpoint parses and checks the signature of a checkpoint line
// against the key the line names.
func parseCheckpoint(line []byte) (*Checkpoint, error) {
	var cl checkpointLine
	if err := json.Unmarshal(line, &cl); err != nil || len(cl.Checkpoint) == 0 {
		return nil, errors.New("not a checkpoint")
	}
	var c Checkpoint
	if err := json.Unmarshal(cl.Checkpoint, &c); err != nil {
		return nil, errors.New("not a checkpoint")
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(c.Key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("checkpoint names no valid key")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(cl.Sig)
	if err != nil || !ed25519.Verify(pub, cl.Checkpoint, sig) {
		return nil, errors.New("checkpoint signature does not verify")
	}
	if c.Seq <= 0 || len(c.Head) != 64 {
		return nil, errors.New("checkpoint has no sequence or head")
	}
	return &c, nil
}

// Input is one file given to Verify: event lines (a log or a rotated
// file) or checkpoint lines, told apart by their content.
type Input struct {
	Name string
	R    io.Reader
}

// Finding is the first thing Verify found wrong.
type Finding struct {
	File string `json:"file"`
	Line int    `json:"line"`          // 1-based line in File
	Seq  int64  `json:"seq,omitempty"` // the event's sequence number, when known
	// Kind: modified, deleted, inserted, reordered, truncated, malformed,
	// checkpoint.
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (f *Finding) String() string {
	s := fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Kind)
	if f.Seq > 0 {
		s += fmt.Sprintf(" (event seq %d)", f.Seq)
	}
	return s + ": " + f.Detail
}

// NodeReport is what Verify established for one node's chain.
type NodeReport struct {
	Node         string `json:"node"`
	Events       int    `json:"events"`
	FirstSeq     int64  `json:"firstSeq"`
	LastSeq      int64  `json:"lastSeq"`
	Checkpointed int64  `json:"checkpointed"` // last sequence a checkpoint covers
	// Unverifiable counts events after the last checkpoint: their chain
	// holds, but lines cut off after them would not be noticed.
	Unverifiable int `json:"unverifiable"`
}

// Report is the outcome of Verify.
type Report struct {
	Nodes       []NodeReport `json:"nodes"`
	Checkpoints int          `json:"checkpoints"`
	Key         string       `json:"key,omitempty"` // the checkpoint key (base64)
	Finding     *Finding     `json:"finding,omitempty"`
}

// OK reports whether nothing was found wrong (the tail may still be
// unverifiable).
func (r *Report) OK() bool { return r.Finding == nil }

// Unverifiable is the number of events no checkpoint covers.
func (r *Report) Unverifiable() int {
	n := 0
	for _, nr := range r.Nodes {
		n += nr.Unverifiable
	}
	return n
}

// maxLine bounds one line; a longer one is malformed.
const maxLine = 1 << 20

type evLine struct {
	file string
	line int
	c    chainFields
	hash [32]byte
	fpos int // the file's place among the inputs, for ordering
}

// Verify checks the chain and checkpoints of the given files (logs, rotated
// logs and checkpoint files, in any order) and reports the first event
// modified, deleted, inserted or out of order, a torn or cut-off tail, and
// how many events at the end no checkpoint covers. With trusted non-nil,
// every checkpoint must be signed by it; otherwise all must share one key,
// which the report names. An error means an input could not be read.
func Verify(inputs []Input, trusted ed25519.PublicKey) (*Report, error) {
	rep := &Report{}
	type evFile struct {
		name  string
		lines []evLine
		pos   int
	}
	var files []*evFile
	type ckpt struct {
		c    *Checkpoint
		file string
		line int
	}
	var ckpts []ckpt
	fail := func(f Finding) (*Report, error) {
		rep.Finding = &f
		return rep, nil
	}
	for pos, in := range inputs {
		br := bufio.NewReaderSize(in.R, 64<<10)
		ef := &evFile{name: in.Name, pos: pos}
		isCkpt := false
		for n := 1; ; n++ {
			line, err := readLine(br)
			if err == io.EOF && len(line) == 0 {
				break
			}
			if err != nil && err != io.EOF {
				if errors.Is(err, errLineTooLong) {
					return fail(Finding{File: in.Name, Line: n, Kind: "malformed", Detail: "line longer than 1 MiB"})
				}
				return nil, err
			}
			torn := err == io.EOF // the last line has no newline
			if n == 1 && bytes.HasPrefix(line, []byte(`{"checkpoint":`)) {
				isCkpt = true
			}
			if isCkpt {
				if torn {
					return fail(Finding{File: in.Name, Line: n, Kind: "truncated", Detail: "the last checkpoint line is incomplete"})
				}
				c, perr := parseCheckpoint(line)
				if perr != nil {
					return fail(Finding{File: in.Name, Line: n, Kind: "checkpoint", Detail: perr.Error()})
				}
				ckpts = append(ckpts, ckpt{c, in.Name, n})
				continue
			}
			if torn {
				return fail(Finding{File: in.Name, Line: n, Kind: "truncated", Detail: "the last line is incomplete (cut off mid-event)"})
			}
			var c chainFields
			if err := unmarshalChain(line, &c); err != nil {
				return fail(Finding{File: in.Name, Line: n, Kind: "malformed", Detail: "not a chained audit event (modified or inserted)"})
			}
			if len(ef.lines) > 0 && ef.lines[0].c.Node != c.Node {
				return fail(Finding{File: in.Name, Line: n, Seq: c.Seq, Kind: "modified",
					Detail: fmt.Sprintf("the event names node %q, the file's first event %q (a node writes its own file)", c.Node, ef.lines[0].c.Node)})
			}
			ef.lines = append(ef.lines, evLine{file: in.Name, line: n, c: c, hash: sha256.Sum256(line), fpos: pos})
			if err == io.EOF {
				break
			}
		}
		if !isCkpt {
			files = append(files, ef)
		}
	}

	// Checkpoint keys.
	for _, c := range ckpts {
		switch {
		case trusted != nil && c.c.Key != base64.StdEncoding.EncodeToString(trusted):
			return fail(Finding{File: c.file, Line: c.line, Kind: "checkpoint", Detail: "signed by a key other than the trusted one"})
		case rep.Key == "":
			rep.Key = c.c.Key
		case rep.Key != c.c.Key:
			return fail(Finding{File: c.file, Line: c.line, Kind: "checkpoint", Detail: "signed by another key than the checkpoints before it"})
		}
	}
	rep.Checkpoints = len(ckpts)

	// Per node, files in chain order (by their first sequence number).
	byNode := map[string][]evLine{}
	var nodes []string
	sort.SliceStable(files, func(i, j int) bool {
		return firstSeq(files[i].lines) < firstSeq(files[j].lines)
	})
	for _, f := range files {
		for _, l := range f.lines {
			if _, ok := byNode[l.c.Node]; !ok {
				nodes = append(nodes, l.c.Node)
			}
			byNode[l.c.Node] = append(byNode[l.c.Node], l)
		}
	}
	sort.Strings(nodes)
	for _, node := range nodes {
		evs := byNode[node]
		if f := checkChain(evs); f != nil {
			return fail(*f)
		}
		nr := NodeReport{Node: node, Events: len(evs), FirstSeq: evs[0].c.Seq, LastSeq: evs[len(evs)-1].c.Seq}
		bySeq := make(map[int64]*evLine, len(evs))
		for i := range evs {
			bySeq[evs[i].c.Seq] = &evs[i]
		}
		for _, c := range ckpts {
			if c.c.Node != node {
				continue
			}
			switch ev := bySeq[c.c.Seq]; {
			case c.c.Seq > nr.LastSeq:
				last := evs[len(evs)-1]
				return fail(Finding{File: last.file, Line: last.line, Seq: last.c.Seq, Kind: "truncated",
					Detail: fmt.Sprintf("events %d to %d are missing after this line: checkpoint %s:%d covers seq %d", nr.LastSeq+1, c.c.Seq, c.file, c.line, c.c.Seq)})
			case ev == nil:
				continue // before the first file given
			case hex.EncodeToString(ev.hash[:]) != c.c.Head:
				return fail(Finding{File: ev.file, Line: ev.line, Seq: ev.c.Seq, Kind: "modified",
					Detail: fmt.Sprintf("the event does not match checkpoint %s:%d", c.file, c.line)})
			}
			nr.Checkpointed = max(nr.Checkpointed, c.c.Seq)
		}
		for _, e := range evs {
			if e.c.Seq > nr.Checkpointed {
				nr.Unverifiable++
			}
		}
		rep.Nodes = append(rep.Nodes, nr)
	}
	for _, c := range ckpts {
		if _, ok := byNode[c.c.Node]; !ok {
			return fail(Finding{File: c.file, Line: c.line, Kind: "truncated",
				Detail: fmt.Sprintf("checkpoint of node %q seq %d, but no event of that node was given", c.c.Node, c.c.Seq)})
		}
	}
	return rep, nil
}

func firstSeq(ls []evLine) int64 {
	if len(ls) == 0 {
		return 0
	}
	return ls[0].c.Seq
}

// checkChain finds the first break in one node's events, in file order.
func checkChain(evs []evLine) *Finding {
	count := make(map[int64]int, len(evs))
	for _, e := range evs {
		count[e.c.Seq]++
	}
	at := func(e evLine, kind, detail string) *Finding {
		return &Finding{File: e.file, Line: e.line, Seq: e.c.Seq, Kind: kind, Detail: detail}
	}
	for i := 1; i < len(evs); i++ {
		p, e := evs[i-1], evs[i]
		link := e.c.Prev == hex.EncodeToString(p.hash[:])
		switch {
		case e.c.Seq == p.c.Seq+1 && link:
			continue
		case count[e.c.Seq] > 1:
			// Two events claim this sequence number: one was inserted.
			// The one the next line chains to is the genuine one.
			if e.c.Seq == p.c.Seq && i+1 < len(evs) && evs[i+1].c.Prev == hex.EncodeToString(e.hash[:]) {
				return at(p, "inserted", "a second event with this sequence number; the chain continues from the next line")
			}
			return at(e, "inserted", "another event has the same sequence number")
		case e.c.Seq == p.c.Seq+1:
			return at(p, "modified", fmt.Sprintf("%s:%d does not chain to this event (the event, or the link in the next line, was changed)", e.file, e.line))
		case e.c.Seq > p.c.Seq+1:
			for s := p.c.Seq + 1; s < e.c.Seq; s++ {
				if count[s] > 0 {
					return at(e, "reordered", fmt.Sprintf("event %d comes later in the log", s))
				}
			}
			if e.c.Seq-p.c.Seq == 2 {
				return at(e, "deleted", fmt.Sprintf("event %d before this line is missing", p.c.Seq+1))
			}
			return at(e, "deleted", fmt.Sprintf("events %d to %d before this line are missing", p.c.Seq+1, e.c.Seq-1))
		default: // e.c.Seq < p.c.Seq: came too late
			return at(e, "reordered", fmt.Sprintf("event %d comes after event %d", e.c.Seq, p.c.Seq))
		}
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; io.EOF with a
// non-empty line means the input ended without a newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(out)+len(chunk) > maxLine+1 {
			return nil, errLineTooLong
		}
		if err == bufio.ErrBufferFull {
			out = append(out, chunk...)
			continue
		}
		out = append(out, chunk...)
		if err != nil {
			return out, err
		}
		return out[:len(out)-1], nil
	}
}
