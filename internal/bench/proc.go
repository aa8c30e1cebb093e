package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuTimes is a process's user + system CPU time.
type cpuTimes time.Duration

func (c cpuTimes) sub(o cpuTimes) time.Duration { return time.Duration(c - o) }

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU reads utime + stime of pid (all its threads, live and exited)
// from /proc/PID/stat.
func procCPU(pid int) (cpuTimes, error) {
	st, err := procStat(pid)
	return st.cpu, err
}

// stat is what /proc/PID/stat tells about a process.
type stat struct {
	cpu            cpuTimes
	minflt, majflt int64 // page faults: minor (page in memory) and major (read from disk)
	// syscr and syscw count the process's read-like and write-like system
	// calls (/proc/PID/io: read, readv, recvmsg, … and write, writev,
	// sendmsg, …); -1 when /proc/PID/io is not readable.
	syscr, syscw int64
}

func procStat(pid int) (stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return stat{}, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); minflt, majflt, utime and stime are fields
	// 10, 12, 14 and 15.
	if len(f) < 13 {
		return stat{}, errors.New("unexpected /proc/PID/stat format")
	}
	var v [4]int64
	for j, k := range []int{7, 9, 11, 12} {
		if v[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return stat{}, errors.New("unexpected /proc/PID/stat format")
		}
	}
	st := stat{cpu: cpuTimes(time.Duration(v[2]+v[3]) * clockTick), minflt: v[0], majflt: v[1], syscr: -1, syscw: -1}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "syscr":
				st.syscr = n
			case "syscw":
				st.syscw = n
			}
		}
	}
	return st, nil
}

// procMem reads VmRSS, RssAnon and RssFile of pid in bytes (0 when unknown).
func procMem(pid int) (rss, anon, file int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "RssAnon":
			anon = n << 10
		case "RssFile":
			file = n << 10
		}
	}
	return rss, anon, file
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	c, err := procCPU(os.Getpid())
	if err != nil {
		return 0
	}
	return time.Duration(c)
}

func loadAvg() []float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(raw))
	var out []float64
	for _, s := range f[:min(3, len(f))] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Time: time.Now().UTC().Truncate(time.Second)}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
