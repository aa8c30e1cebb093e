package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Server is a Keyward dev server started as its own process, so that its
// CPU time can be told apart from the client's.
type Server struct {
	Cmd     *exec.Cmd
	DataDir string
	DevJSON string
	done    chan error
}

// StartServer runs `exe args...` (normally `keyward server --dev --listen
// 127.0.0.1:0 --data DIR`) with this process's environment plus env, and
// waits until it has written a fresh DIR/dev.json.
func StartServer(ctx context.Context, exe string, args, env []string, dataDir string, stderr io.Writer) (*Server, error) {
	devJSON := filepath.Join(dataDir, "dev.json")
	var before time.Time
	if fi, err := os.Stat(devJSON); err == nil {
		before = fi.ModTime()
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Cmd: cmd, DataDir: dataDir, DevJSON: devJSON, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("server exited before it was ready: %v", err)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-deadline:
			s.Stop()
			return nil, errors.New("server did not write dev.json within 2 minutes")
		case <-time.After(50 * time.Millisecond):
		}
		fi, err := os.Stat(devJSON)
		if err != nil || !fi.ModTime().After(before) {
			continue
		}
		if _, err := ReadDevInfo(devJSON); err == nil {
			return s, nil
		}
	}
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.Cmd.Process.Pid }

// Stop interrupts the server (a clean shutdown) and waits for it, killing
// it after 10 seconds.
func (s *Server) Stop() error {
	s.Cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		s.Cmd.Process.Kill()
		return <-s.done
	}
}

// FloorReady is what `keyward bench floor-server` writes to its --ready
// file once it listens.
type FloorReady struct {
	Listen    string `json:"listen"`
	AuditFile string `json:"audit_file,omitempty"`
}

// StartFloorServer runs `exe args...` (normally `keyward bench
// floor-server ... --ready readyFile`) and waits until it has written
// readyFile.
func StartFloorServer(ctx context.Context, exe string, args, env []string, readyFile string, stderr io.Writer) (*Server, *FloorReady, error) {
	os.Remove(readyFile)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	s := &Server{Cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.After(time.Minute)
	for {
		select {
		case err := <-s.done:
			return nil, nil, fmt.Errorf("floor server exited before it was ready: %v", err)
		case <-ctx.Done():
			s.Stop()
			return nil, nil, ctx.Err()
		case <-deadline:
			s.Stop()
			return nil, nil, errors.New("floor server did not become ready within a minute")
		case <-time.After(20 * time.Millisecond):
		}
		raw, err := os.ReadFile(readyFile)
		if err != nil {
			continue
		}
		var r FloorReady
		if json.Unmarshal(raw, &r) == nil && r.Listen != "" {
			return s, &r, nil
		}
	}
}
