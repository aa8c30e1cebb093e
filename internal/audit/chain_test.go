package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

// writeLog writes n events through a FileSink with a signing key and a
// final checkpoint, and returns the log and checkpoint file contents.
func writeLog(t testing.TB, dir string, n int, opt FileOptions) (string, ed25519.PublicKey) {
	t.Helper()
	path := filepath.Join(dir, "audit.log")
	s, err := OpenFileWith(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	s.SetSigner(key)
	l := NewLog(nil, s)
	for i := range n {
		e := &Event{Time: time.Unix(int64(i), 0).UTC(), RequestID: fmt.Sprintf("r%d", i), Service: "vault",
			Operation: "SecretGet", Status: 200, Method: "GET", Path: "/secrets/s"}
		if err := l.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, pub
}

func verifyFiles(t testing.TB, key ed25519.PublicKey, files map[string][]byte) *Report {
	t.Helper()
	var in []Input
	for _, name := range sortedKeys(files) {
		in = append(in, Input{Name: name, R: bytes.NewReader(files[name])})
	}
	rep, err := Verify(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyFindsEachTamper: an intact log verifies with every event
// covered; each kind of tampering is reported at the event it touched.
func TestVerifyFindsEachTamper(t *testing.T) {
	dir := t.TempDir()
	path, pub := writeLog(t, dir, 40, FileOptions{Node: "n1", CheckpointEvery: 7})
	log, ckpts := readAll(t, path), readAll(t, path+CheckpointSuffix)
	if n := bytes.Count(ckpts, []byte("\n")); n != 40/7+1 {
		t.Fatalf("%d checkpoints for 40 events every 7 plus the last", n)
	}
	rep := verifyFiles(t, pub, map[string][]byte{"audit.log": log, "audit.log.checkpoints": ckpts})
	if !rep.OK() || rep.Unverifiable() != 0 || len(rep.Nodes) != 1 || rep.Nodes[0].Events != 40 || rep.Nodes[0].Checkpointed != 40 {
		t.Fatalf("intact log: %+v %v", rep, rep.Finding)
	}
	lines := bytes.SplitAfter(log, []byte("\n"))
	lines = lines[:len(lines)-1]
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	clone := func() [][]byte {
		out := make([][]byte, len(lines))
		for i, l := range lines {
			out[i] = bytes.Clone(l)
		}
		return out
	}
	cases := []struct {
		name   string
		mutate func() []byte
		line   int
		kind   string
		noCkpt bool
	}{
		{"byte changed", func() []byte {
			ls := clone()
			i := bytes.Index(ls[11], []byte(`"r11"`))
			ls[11][i+2] = '9' // r11 -> r19: valid JSON, different event
			return join(ls)
		}, 12, "modified", false},
		{"last byte changed", func() []byte {
			ls := clone()
			i := bytes.Index(ls[39], []byte(`"r39"`))
			ls[39][i+2] = '8'
			return join(ls)
		}, 40, "modified", false},
		{"line deleted", func() []byte {
			ls := clone()
			return join(append(ls[:20:20], ls[21:]...))
		}, 21, "deleted", false},
		{"two lines swapped", func() []byte {
			ls := clone()
			ls[5], ls[6] = ls[6], ls[5]
			return join(ls)
		}, 6, "reordered", false},
		{"line inserted (copy)", func() []byte {
			ls := clone()
			return join(append(ls[:30:30], append([][]byte{ls[3]}, ls[30:]...)...))
		}, 31, "inserted", false},
		{"line inserted (forged)", func() []byte {
			ls := clone()
			return join(append(ls[:30:30], append([][]byte{[]byte(`{"time":"2026-01-01T00:00:00Z","request_id":"x"}` + "\n")}, ls[30:]...)...))
		}, 31, "malformed", false},
		{"tail truncated", func() []byte {
			return join(clone()[:35])
		}, 35, "truncated", false},
		{"cut mid-line", func() []byte {
			b := join(clone())
			return b[:len(b)-10]
		}, 40, "truncated", false},
		{"checkpoint dropped", func() []byte { return log }, 0, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{"audit.log": c.mutate(), "audit.log.checkpoints": ckpts}
			if c.noCkpt {
				files["audit.log.checkpoints"] = bytes.SplitAfterN(ckpts, []byte("\n"), 2)[0]
				rep := verifyFiles(t, pub, files)
				if !rep.OK() || rep.Unverifiable() != 33 {
					t.Fatalf("without the later checkpoints: %+v, finding %v; want OK with 33 unverifiable", rep, rep.Finding)
				}
				return
			}
			rep := verifyFiles(t, pub, files)
			if rep.OK() {
				t.Fatal("tampering not found")
			}
			if rep.Finding.Line != c.line || rep.Finding.Kind != c.kind || rep.Finding.File != "audit.log" {
				t.Fatalf("finding %v, want audit.log line %d %s", rep.Finding, c.line, c.kind)
			}
		})
	}
	// A checkpoint signed by another key, or a changed one.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if rep := verifyFiles(t, other, map[string][]byte{"a": log, "c": ckpts}); rep.OK() || rep.Finding.Kind != "checkpoint" {
		t.Fatalf("untrusted key: %v", rep.Finding)
	}
	bad := bytes.Replace(ckpts, []byte(`"seq":7,`), []byte(`"seq":8,`), 1)
	if rep := verifyFiles(t, nil, map[string][]byte{"a": log, "c": bad}); rep.OK() || rep.Finding.Kind != "checkpoint" || rep.Finding.Line != 1 {
		t.Fatalf("changed checkpoint: %v", rep.Finding)
	}
}

// TestChainContinuesAcrossRotationAndRestart: rotated files and a reopened
// log continue one chain, which verifies whole.
func TestChainContinuesAcrossRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	opt := FileOptions{Node: "n1", MaxBytes: 4 << 10, CheckpointEvery: 1000, Clock: clk}
	path, pub := writeLog(t, dir, 30, opt)
	clk.Advance(time.Second)
	// Reopen (a restart): the chain goes on from the last line.
	s, err := OpenFileWith(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := s.Head(); seq != 30 {
		t.Fatalf("reopened at seq %d, want 30", seq)
	}
	for i := range 5 {
		if err := s.Write(context.Background(), &Event{RequestID: fmt.Sprint("again", i), Time: clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	m, _ := filepath.Glob(path + "*")
	files := map[string][]byte{}
	rotated := 0
	for _, p := range m {
		files[filepath.Base(p)] = readAll(t, p)
		if strings.Contains(filepath.Base(p), ".2026") {
			rotated++
		}
	}
	if rotated < 2 {
		t.Fatalf("%d rotated files, want several at 4 KiB each (%v)", rotated, m)
	}
	rep := verifyFiles(t, pub, files)
	if !rep.OK() || rep.Nodes[0].Events != 35 || rep.Nodes[0].Checkpointed != 30 || rep.Unverifiable() != 5 {
		t.Fatalf("rotated and reopened: %+v %v", rep, rep.Finding)
	}
	// Dropping a middle rotated file is a deletion.
	var names []string
	for _, n := range sortedKeys(files) {
		if strings.Contains(n, ".2026") {
			names = append(names, n)
		}
	}
	delete(files, names[1])
	if rep := verifyFiles(t, pub, files); rep.OK() || rep.Finding.Kind != "deleted" {
		t.Fatalf("a rotated file dropped: %v", rep.Finding)
	}
}

// FuzzVerifyReader: Verify reads any bytes without panicking, and one
// changed byte anywhere in a fully checkpointed log is always found.
func FuzzVerifyReader(f *testing.F) {
	dir := f.TempDir()
	path, pub := writeLog(f, dir, 6, FileOptions{Node: "fz", CheckpointEvery: 4})
	log, ckpts := readAll(f, path), readAll(f, path+CheckpointSuffix)
	f.Add([]byte(nil), uint(0), byte(1))
	f.Add([]byte(`{"checkpoint":{}}`+"\n"), uint(10), byte('x'))
	f.Add(log[:100], uint(len(log)-1), byte(' '))
	f.Fuzz(func(t *testing.T, data []byte, at uint, to byte) {
		// Arbitrary bytes, as a log and as a checkpoint file.
		if _, err := Verify([]Input{{Name: "x", R: bytes.NewReader(data)}, {Name: "c", R: bytes.NewReader(ckpts)}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify([]Input{{Name: "l", R: bytes.NewReader(log)}, {Name: "x", R: bytes.NewReader(append([]byte(`{"checkpoint":`), data...))}}, nil); err != nil {
			t.Fatal(err)
		}
		// One byte of the intact log changed.
		i := int(at % uint(len(log)))
		if log[i] == to {
			return
		}
		mut := bytes.Clone(log)
		mut[i] = to
		rep, err := Verify([]Input{{Name: "l", R: bytes.NewReader(mut)}, {Name: "c", R: bytes.NewReader(ckpts)}}, pub)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Fatalf("byte %d changed %q -> %q not found", i, log[i], to)
		}
	})
}

// FuzzUsageReport: the report reads any bytes without panicking or failing,
// and counts no more uses than there are lines.
func FuzzUsageReport(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-01T10:00:00Z","service":"vault","vault":"v","object_id":"https://v/secrets/a/1","operation":"SecretGet","result":"denied","caller":{"oid":"o"}}` + "\n"))
	f.Add([]byte(`{"checkpoint":{}}` + "\n{}\n{\"service\":\"vault\",\"object_id\":\"x\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := UsageReport([]Input{{Name: "x", R: bytes.NewReader(data)}}, ReportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range rep {
			for _, c := range o.Callers {
				n += c.Count
				if c.Denied > c.Count {
					t.Fatalf("%d denied of %d", c.Denied, c.Count)
				}
			}
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; n > lines {
			t.Fatalf("%d uses from %d lines", n, lines)
		}
	})
}
