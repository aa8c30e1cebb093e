package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
)

// printer renders a result the way az does: -o json (sorted keys, two
// spaces), jsonc (the same, coloured), table (knack's auto table: the
// scalar top-level fields, id/type/etag left out), tsv (values of sorted
// keys, tab-separated, nested objects empty, lists as their length),
// yaml and none; --query is applied first (JMESPath).
type printer struct {
	o      IO
	format string
	query  string
}

var formats = map[string]bool{"json": true, "jsonc": true, "table": true, "tsv": true, "yaml": true, "yamlc": true, "none": true}

func (p *printer) check() error {
	if !formats[p.format] {
		return fmt.Errorf("--output %q is not one of json, jsonc, table, tsv, yaml, yamlc, none", p.format)
	}
	if p.query != "" {
		if _, err := jmespath.Compile(p.query); err != nil {
			return fmt.Errorf("--query %q is not a JMESPath expression: %v", p.query, err)
		}
	}
	return nil
}

// toAny is v as generic JSON values (numbers as json.Number).
func toAny(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values this package built
	}
	var out any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		panic(err)
	}
	return out
}

// print renders v; columns, when not nil, is the command's table
// transformer (header, JMESPath) as az's table_transformer.
func (p *printer) print(v any, columns [][2]string) error {
	if err := p.check(); err != nil {
		return err
	}
	var order []string
	if p.query != "" {
		r, err := jmespath.Search(p.query, numbersToFloat(v))
		if err != nil {
			return fmt.Errorf("--query: %v", err)
		}
		v, columns = r, nil
		order = queryKeyOrder(p.query)
	}
	w := p.o.Stdout
	switch p.format {
	case "none":
		return nil
	case "json", "jsonc":
		if v == nil && p.query == "" {
			return nil // az prints nothing for a command without a result
		}
		raw, err := marshalAz(v)
		if err != nil {
			return err
		}
		if p.format == "jsonc" {
			raw = colourJSON(raw)
		}
		_, err = fmt.Fprintf(w, "%s\n", raw)
		return err
	case "yaml", "yamlc":
		if v == nil && p.query == "" {
			return nil
		}
		var b strings.Builder
		yamlValue(&b, normalise(v), 0, false)
		switch x := v.(type) {
		case map[string]any, []any:
		case string:
			if !strings.HasPrefix(b.String(), "'") && !strings.HasPrefix(b.String(), "\"") {
				b.WriteString("...\n") // PyYAML ends a plain root scalar's document
			}
		default:
			_ = x
			b.WriteString("...\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	case "tsv":
		var b strings.Builder
		rows, ok := v.([]any)
		if !ok {
			if v == nil {
				return nil
			}
			rows = []any{v}
		}
		for _, r := range rows {
			tsvRow(&b, normalise(r), order)
		}
		_, err := io.WriteString(w, b.String())
		return err
	case "table":
		if v == nil {
			return nil
		}
		_, err := io.WriteString(w, table(normalise(v), columns, order))
		return err
	}
	return nil
}

// normalise turns json.Number into float64/int64-printing strings the
// renderers share: numbers stay json.Number.
func normalise(v any) any { return v }

// numbersToFloat gives go-jmespath numbers it can compare.
func numbersToFloat(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = numbersToFloat(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = numbersToFloat(e)
		}
		return l
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return v
}

// marshalAz is Python's json.dumps(indent=2, sort_keys=True,
// ensure_ascii=False): Go sorts map keys; integers print as integers.
func marshalAz(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(intFloats(v)); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// intFloats prints whole float64s (from --query) as integers, as Python
// keeps ints ints.
func intFloats(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = intFloats(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = intFloats(e)
		}
		return l
	case float64:
		if x == float64(int64(x)) {
			return json.Number(strconv.FormatInt(int64(x), 10))
		}
	}
	return v
}

var jsonToken = regexp.MustCompile(`"(?:[^"\\]|\\.)*"(\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?`)

// colourJSON is jsonc: keys blue, strings green, literals cyan (ANSI).
func colourJSON(raw []byte) []byte {
	return jsonToken.ReplaceAllFunc(raw, func(t []byte) []byte {
		switch {
		case t[0] == '"' && bytes.HasSuffix(bytes.TrimRight(t, " "), []byte(":")):
			i := bytes.LastIndexByte(t, '"') + 1
			return append([]byte("\x1b[94m"+string(t[:i])+"\x1b[39m"), t[i:]...)
		case t[0] == '"':
			return []byte("\x1b[32m" + string(t) + "\x1b[39m")
		}
		return []byte("\x1b[36m" + string(t) + "\x1b[39m")
	})
}

// scalar is how table and tsv print one value (Python's str()).
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

// tsvRow is knack's _TsvOutput._dump_row.
func tsvRow(b *strings.Builder, v any, order []string) {
	cell := func(e any) {
		switch x := e.(type) {
		case []any:
			b.WriteString(strconv.Itoa(len(x)))
		case map[string]any:
		default:
			b.WriteString(scalar(x))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		keys := orderedKeys(x, order)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte('\t')
			}
			cell(x[k])
		}
	case []any:
		for i, e := range x {
			if i > 0 {
				b.WriteByte('\t')
			}
			cell(e)
		}
	case bool:
		b.WriteString(strings.ToLower(scalar(x)))
	default:
		cell(x)
	}
	b.WriteByte('\n')
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// table is knack's _TableOutput with tabulate's "simple" format; columns
// (header, JMESPath) replace the automatic columns as a table transformer.
func table(v any, columns [][2]string, order []string) string {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var headers []string
	var rows [][]string
	if columns != nil {
		for _, c := range columns {
			headers = append(headers, c[0])
		}
		for _, it := range items {
			row := make([]string, len(columns))
			for i, c := range columns {
				r, _ := jmespath.Search(c[1], numbersToFloat(it))
				if r != nil {
					row[i] = scalar(r)
				}
			}
			rows = append(rows, row)
		}
	} else {
		// Columns in first-seen order across items, as tabulate's "keys".
		index := map[string]int{}
		var entries []map[string]string
		for _, it := range items {
			e := map[string]string{}
			add := func(k, val string) {
				if _, seen := index[k]; !seen {
					index[k] = len(headers)
					headers = append(headers, k)
				}
				e[k] = val
			}
			switch x := it.(type) {
			case map[string]any:
				keys := orderedKeys(x, order)
				for _, k := range keys {
					if k == "id" || k == "type" || k == "etag" {
						continue
					}
					switch x[k].(type) {
					case nil, map[string]any, []any:
						continue
					}
					add(strings.ToUpper(k[:1])+k[1:], scalar(x[k]))
				}
			case []any:
				for i, c := range x {
					add("Column"+strconv.Itoa(i+1), scalar(c))
				}
			default:
				add("Result", scalar(x))
			}
			entries = append(entries, e) // a row with no cells prints as an empty line
		}
		for _, e := range entries {
			row := make([]string, len(headers))
			for i, h := range headers {
				row[i] = e[h]
			}
			rows = append(rows, row)
		}
	}
	if len(headers) == 0 {
		return ""
	}
	width := make([]int, len(headers))
	for i, h := range headers {
		width[i] = len([]rune(h)) + 2 // tabulate's MIN_PADDING for a header
		for _, r := range rows {
			width[i] = max(width[i], len([]rune(r[i])))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i, c := range cells {
			if i > 0 {
				l.WriteString("  ")
			}
			l.WriteString(c)
			l.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		b.WriteString(strings.TrimRight(l.String(), " ")) // az prints no trailing blanks
		b.WriteByte('\n')
	}
	line(headers)
	dashes := make([]string, len(headers))
	for i := range headers {
		dashes[i] = strings.Repeat("-", width[i])
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// yamlValue is PyYAML's safe_dump(default_flow_style=False): block
// style, sorted keys, lists not indented under their key, strings that
// would read as another type single-quoted.
func yamlValue(b *strings.Builder, v any, indent int, inList bool) {
	pad := strings.Repeat(" ", indent)
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			b.WriteString("{}\n")
			return
		}
		for i, k := range sortedKeys(x) {
			if i > 0 || !inList {
				b.WriteString(pad)
			}
			b.WriteString(yamlString(k) + ":")
			switch e := x[k].(type) {
			case map[string]any:
				if len(e) == 0 {
					b.WriteString(" {}\n")
				} else {
					b.WriteByte('\n')
					yamlValue(b, e, indent+2, false)
				}
			case []any:
				if len(e) == 0 {
					b.WriteString(" []\n")
				} else {
					b.WriteByte('\n')
					yamlValue(b, e, indent, false)
				}
			default:
				b.WriteString(" " + yamlScalar(e) + "\n")
			}
		}
	case []any:
		if len(x) == 0 {
			if !inList {
				b.WriteString(pad)
			}
			b.WriteString("[]\n")
			return
		}
		for i, e := range x {
			if i > 0 || !inList {
				b.WriteString(pad)
			}
			b.WriteString("- ")
			switch e.(type) {
			case map[string]any, []any:
				yamlValue(b, e, indent+2, true)
			default:
				b.WriteString(yamlScalar(e) + "\n")
			}
		}
	default:
		b.WriteString(yamlScalar(x) + "\n")
	}
}

func yamlScalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case string:
		return yamlString(x)
	}
	return scalar(v)
}

var (
	yamlPlain    = regexp.MustCompile(`^[A-Za-z0-9_/.(-][A-Za-z0-9 _./@+=():-]*$`)
	yamlReserved = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|~|null|Null|NULL|)$`)
	// PyYAML's implicit int, float and timestamp resolvers.
	yamlNumeric = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$` +
		`|^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$` +
		`|^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$`)
)

func yamlString(s string) string {
	if s != "" && yamlPlain.MatchString(s) && !yamlReserved.MatchString(s) && !yamlNumeric.MatchString(s) &&
		!strings.HasSuffix(s, " ") && !strings.HasSuffix(s, ":") && !strings.Contains(s, " #") && !strings.Contains(s, ": ") {
		return s
	}
	if strings.ContainsAny(s, "\n\t\\\"") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 }) {
		raw, _ := json.Marshal(s)
		return string(raw)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// orderedKeys is m's keys in the order a --query multiselect hash named
// them (knack keeps a query's order), else sorted (as without a query).
func orderedKeys(m map[string]any, order []string) []string {
	if len(order) == len(m) {
		ok := true
		for _, k := range order {
			if _, in := m[k]; !in {
				ok = false
				break
			}
		}
		if ok {
			return order
		}
	}
	return sortedKeys(m)
}

// queryKeyOrder is the key order of the multiselect hash a JMESPath
// expression ends with ("[].{b:x, a:y}" → b, a); nil when it ends with
// something else. go-jmespath returns maps, which have no order.
func queryKeyOrder(q string) []string {
	q = strings.TrimSpace(q)
	if !strings.HasSuffix(q, "}") {
		return nil
	}
	depth, open := 0, -1
	for i := len(q) - 1; i >= 0 && open < 0; i-- {
		switch q[i] {
		case '}', ']', ')':
			depth++
		case '{', '[', '(':
			depth--
			if depth == 0 {
				open = i
			}
		case '\'', '"', '`':
			// A quote inside the hash: give up rather than guess.
			return nil
		}
	}
	if open < 0 {
		return nil
	}
	var keys []string
	depth, start := 0, open+1
	inner := q[:len(q)-1]
	for i := open + 1; i <= len(inner); i++ {
		if i == len(inner) || inner[i] == ',' && depth == 0 {
			k, _, ok := strings.Cut(inner[start:i], ":")
			if !ok {
				return nil
			}
			keys = append(keys, strings.TrimSpace(k))
			start = i + 1
			continue
		}
		switch inner[i] {
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
		}
	}
	return keys
}
