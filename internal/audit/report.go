package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"time"
)

// This file: the key-usage report (keyward audit report): per object, who
// used it, with which operations, how often, first and last use, and the
// attempts that were denied — what an administrator hands the security
// administrator.

// ObjectUsage is the use of one vault object (key, secret or certificate,
// all versions).
type ObjectUsage struct {
	Vault   string        `json:"vault"`
	Object  string        `json:"object"` // object URL without version
	Callers []CallerUsage `json:"callers"`
}

// CallerUsage is one principal's use of an object.
type CallerUsage struct {
	ObjectID   string         `json:"callerObjectId,omitempty"`
	AppID      string         `json:"callerAppId,omitempty"`
	Operations map[string]int `json:"operations"` // Azure operation name → count
	Count      int            `json:"count"`
	Denied     int            `json:"denied"`
	First      time.Time      `json:"firstUse"`
	Last       time.Time      `json:"lastUse"`
}

// ReportFilter selects the events of a report.
type ReportFilter struct {
	Since time.Time // zero: from the beginning
	Until time.Time // exclusive; zero: to the end
	Vault string    // empty: every vault
}

// UsageReport reads audit logs (checkpoint files are skipped) and returns
// the usage of every vault object, sorted by vault and object, callers by
// count (most first). Lines that are not events are skipped: verify the
// log first to know it is whole.
func UsageReport(inputs []Input, f ReportFilter) ([]ObjectUsage, error) {
	type key struct{ vault, object string }
	type ckey struct{ oid, appid string }
	objs := map[key]map[ckey]*CallerUsage{}
	for _, in := range inputs {
		br := bufio.NewReaderSize(in.R, 64<<10)
		for {
			line, err := readLine(br)
			if len(line) > 0 && line[0] == '{' && !strings.HasPrefix(string(line[:min(len(line), 14)]), `{"checkpoint"`) {
				var e struct {
					Time          time.Time `json:"time"`
					Service       string    `json:"service"`
					Vault         string    `json:"vault"`
					ObjectID      string    `json:"object_id"`
					OperationName string    `json:"operationName"`
					Operation     string    `json:"operation"`
					Result        Result    `json:"result"`
					Caller        Caller    `json:"caller"`
				}
				if json.Unmarshal(line, &e) == nil && e.Service == "vault" && e.ObjectID != "" &&
					!e.Time.Before(f.Since) && (f.Until.IsZero() || e.Time.Before(f.Until)) && (f.Vault == "" || strings.EqualFold(f.Vault, e.Vault)) {
					k := key{strings.ToLower(e.Vault), ObjectBase(e.ObjectID)}
					if objs[k] == nil {
						objs[k] = map[ckey]*CallerUsage{}
					}
					ck := ckey{e.Caller.ObjectID, e.Caller.AppID}
					u := objs[k][ck]
					if u == nil {
						u = &CallerUsage{ObjectID: ck.oid, AppID: ck.appid, Operations: map[string]int{}, First: e.Time, Last: e.Time}
						objs[k][ck] = u
					}
					op := e.OperationName
					if op == "" {
						op = AzureOperationName(e.Operation)
					}
					u.Operations[op]++
					u.Count++
					if e.Result == Denied || e.Result == Unauthenticated {
						u.Denied++
					}
					if e.Time.Before(u.First) {
						u.First = e.Time
					}
					if e.Time.After(u.Last) {
						u.Last = e.Time
					}
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				if err == errLineTooLong {
					continue
				}
				return nil, err
			}
		}
	}
	var out []ObjectUsage
	for k, callers := range objs {
		ou := ObjectUsage{Vault: k.vault, Object: k.object}
		for _, u := range callers {
			ou.Callers = append(ou.Callers, *u)
		}
		sort.Slice(ou.Callers, func(i, j int) bool {
			a, b := ou.Callers[i], ou.Callers[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			return a.ObjectID+a.AppID < b.ObjectID+b.AppID
		})
		out = append(out, ou)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vault != out[j].Vault {
			return out[i].Vault < out[j].Vault
		}
		return out[i].Object < out[j].Object
	})
	return out, nil
}

// ObjectBase is an object URL without its version: .../secrets/{name}.
func ObjectBase(id string) string {
	for _, kind := range []string{"/secrets/", "/keys/", "/certificates/", "/deletedsecrets/", "/deletedkeys/", "/deletedcertificates/"} {
		if i := strings.Index(id, kind); i >= 0 {
			rest := id[i+len(kind):]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				return id[:i+len(kind)+j]
			}
			return id
		}
	}
	return id
}
