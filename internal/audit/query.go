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

// This file: the audit report query (the management API's
// Keyward.Audit/events, the console's audit page): the events of one
// vault, filtered, newest first, a page at a time.

// Query selects the events of one vault.
type Query struct {
	Vault      string    // vault name (required)
	ResourceID string    // the vault's resource ID; events that name another are skipped
	From, To   time.Time // From inclusive, To exclusive; zero: unbounded
	Principal  string    // caller object ID, application ID or UPN (case-insensitive)
	Operation  string    // Azure's operationName or Keyward's operation (case-insensitive)
	Result     Result    // empty: any
	Before     int64     // only events whose seq is below this (the page token); 0: none
	Top        int       // page size (> 0)
}

// QueryPage is a page of events, newest first; Next is the Before of the
// next page (0: this is the last).
type QueryPage struct {
	Events []json.RawMessage
	Next   int64
}

// QueryEvents reads one node's audit log files (checkpoint files and lines
// that are not events are skipped) and returns a page of the events that
// match q, newest (highest seq) first. Each event is the line as written:
// Azure's AuditEvent fields and Keyward's, never a value or a token.
func QueryEvents(inputs []Input, q Query) (*QueryPage, error) {
	if q.Top <= 0 {
		q.Top = 1
	}
	type hit struct {
		seq  int64
		line json.RawMessage
	}
	var hits []hit
	trim := func() {
		sort.Slice(hits, func(i, j int) bool { return hits[i].seq > hits[j].seq })
		hits = hits[:min(len(hits), q.Top+1)]
	}
	for _, in := range inputs {
		br := bufio.NewReaderSize(in.R, 64<<10)
		for {
			line, err := readLine(br)
			if len(line) > 0 && line[0] == '{' && !strings.HasPrefix(string(line[:min(len(line), 14)]), `{"checkpoint"`) {
				if seq, ok := q.match(line); ok {
					hits = append(hits, hit{seq, append(json.RawMessage(nil), line...)})
					if len(hits) > 4*(q.Top+1) {
						trim()
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
	trim()
	page := &QueryPage{Events: []json.RawMessage{}}
	for i, h := range hits {
		if i == q.Top {
			page.Next = hits[i-1].seq
			break
		}
		page.Events = append(page.Events, h.line)
	}
	return page, nil
}

// match decodes the fields a query filters on.
func (q *Query) match(line []byte) (int64, bool) {
	var e struct {
		Time          time.Time `json:"time"`
		ResourceID    string    `json:"resourceId"`
		OperationName string    `json:"operationName"`
		Operation     string    `json:"operation"`
		Vault         string    `json:"vault"`
		Result        Result    `json:"result"`
		Caller        Caller    `json:"caller"`
		Seq           int64     `json:"seq"`
	}
	if json.Unmarshal(line, &e) != nil || e.Seq <= 0 || !strings.EqualFold(e.Vault, q.Vault) || q.Vault == "" {
		return 0, false
	}
	if e.ResourceID != "" && q.ResourceID != "" && !strings.EqualFold(e.ResourceID, q.ResourceID) &&
		!strings.HasPrefix(strings.ToLower(e.ResourceID), strings.ToLower(q.ResourceID)+"/") {
		return 0, false
	}
	switch {
	case q.Before > 0 && e.Seq >= q.Before,
		!q.From.IsZero() && e.Time.Before(q.From),
		!q.To.IsZero() && !e.Time.Before(q.To),
		q.Result != "" && e.Result != q.Result,
		q.Operation != "" && !strings.EqualFold(q.Operation, e.OperationName) && !strings.EqualFold(q.Operation, e.Operation),
		q.Principal != "" && !strings.EqualFold(q.Principal, e.Caller.ObjectID) && !strings.EqualFold(q.Principal, e.Caller.AppID) &&
			!strings.EqualFold(q.Principal, e.Caller.UPN):
		return 0, false
	}
	return e.Seq, true
}
