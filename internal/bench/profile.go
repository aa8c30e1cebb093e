package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Profile asks a server that serves net/http/pprof (the hidden `keyward
// bench server`) for profiles of the measured phase: a CPU profile as long
// as the phase, and allocation profiles at its start and end, to compare
// with `go tool pprof -diff_base`.
type Profile struct {
	URL string // e.g. http://127.0.0.1:6060/debug/pprof/
	Dir string
}

// profiling is a profile in progress.
type profiling struct {
	p    *Profile
	base string
	done chan error
}

func (p *Profile) start(ctx context.Context, name string, d time.Duration) (*profiling, error) {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	pr := &profiling{p: p, base: filepath.Join(p.Dir, name), done: make(chan error, 1)}
	if err := fetch(ctx, p.URL+"allocs", pr.base+"-allocs-before.pprof"); err != nil {
		return nil, err
	}
	secs := int(math.Ceil(d.Seconds()))
	go func() { pr.done <- fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", p.URL, secs), pr.base+"-cpu.pprof") }()
	return pr, nil
}

func (pr *profiling) stop(ctx context.Context) error {
	if err := fetch(ctx, pr.p.URL+"allocs", pr.base+"-allocs-after.pprof"); err != nil {
		return err
	}
	return <-pr.done
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
