package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ironcast/ironcast/model"
	"sigs.k8s.io/yaml"
)

// Output formats for -o.
const (
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatTable = "table"
)

var formats = []string{formatJSON, formatYAML, formatTable}

// column is one table column: a header, the top-level field it shows,
// and what to show when the field is absent (omitempty drops false and 0).
type column struct {
	Header string
	Field  string
	Empty  string
}

// maxCell bounds a table cell; -o json or -o yaml shows everything.
const maxCell = 60

// columns are the table columns per kind: the fields an operator scans a
// list for.
var columns = map[string][]column{
	model.KindMachines:     {{"UUID", "UUID", ""}, {"Name", "Name", ""}, {"MAC", "HardwareAddrs", ""}, {"Address", "Address", ""}, {"State", "State", ""}, {"BootEnv", "BootEnv", ""}},
	model.KindBootEnvs:     {{"Name", "Name", ""}, {"Available", "Available", "false"}, {"ReadOnly", "ReadOnly", "false"}, {"Description", "Description", ""}},
	model.KindTemplates:    {{"ID", "ID", ""}, {"ReadOnly", "ReadOnly", "false"}, {"Description", "Description", ""}},
	model.KindParams:       {{"Name", "Name", ""}, {"Secure", "Secure", "false"}, {"Default", "Default", ""}, {"Description", "Description", ""}},
	model.KindProfiles:     {{"Name", "Name", ""}, {"Description", "Description", ""}},
	model.KindSubnets:      {{"Name", "Name", ""}, {"Subnet", "Subnet", ""}, {"ActiveStart", "ActiveStart", ""}, {"ActiveEnd", "ActiveEnd", ""}, {"Enabled", "Enabled", "false"}, {"Proxy", "Proxy", "false"}},
	model.KindReservations: {{"Addr", "Addr", ""}, {"MAC", "Token", ""}, {"Description", "Description", ""}},
	model.KindLeases:       {{"Addr", "Addr", ""}, {"MAC", "Token", ""}, {"Subnet", "Subnet", ""}, {"State", "State", ""}, {"ExpireTime", "ExpireTime", ""}, {"Hostname", "Hostname", ""}},
	model.KindPools:        {{"Name", "Name", ""}, {"BootEnv", "BootEnv", ""}, {"MinReady", "MinReady", "0"}, {"Description", "Description", ""}},
	model.KindUsers:        {{"Name", "Name", ""}, {"Role", "Role", ""}, {"Description", "Description", ""}},
}

// printer writes API results to out in one format.
type printer struct {
	out    io.Writer
	format string
}

// checkFormat rejects an unknown -o value as a usage error.
func checkFormat(f string) error {
	for _, v := range formats {
		if f == v {
			return nil
		}
	}
	return usageErrorf("unknown output format %q (want %s)", f, strings.Join(formats, ", "))
}

// value prints one JSON document (an object, a map of params, info) as
// pretty JSON or YAML. -o table prints an object as a one-row table of its
// kind's columns when kind is known, and as FIELD VALUE lines otherwise.
func (p printer) value(kind string, doc []byte) error {
	switch p.format {
	case formatTable:
		if cols, ok := columns[kind]; ok {
			return p.table(cols, []json.RawMessage{doc})
		}
		return p.fields(doc)
	case formatYAML:
		return p.yaml(doc)
	}
	return p.json(doc)
}

// list prints the objects of one kind: a table by default, or a JSON or
// YAML list.
func (p printer) list(kind string, items []json.RawMessage) error {
	switch p.format {
	case formatJSON, formatYAML:
		if items == nil {
			items = []json.RawMessage{} // "[]", never "null"
		}
		b, err := json.Marshal(items)
		if err != nil {
			return fmt.Errorf("encode list: %w", err)
		}
		if p.format == formatYAML {
			return p.yaml(b)
		}
		return p.json(b)
	}
	return p.table(columns[kind], items)
}

func (p printer) json(doc []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		return fmt.Errorf("format server reply: %w", err)
	}
	buf.WriteByte('\n')
	_, err := p.out.Write(buf.Bytes())
	return err
}

func (p printer) yaml(doc []byte) error {
	b, err := yaml.JSONToYAML(doc)
	if err != nil {
		return fmt.Errorf("format server reply: %w", err)
	}
	_, err = p.out.Write(b)
	return err
}

// table writes items as aligned columns with a header row.
func (p printer) table(cols []column, items []json.RawMessage) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = c.Header
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, raw := range items {
		var obj map[string]any
		if err := decodeJSON(raw, &obj); err != nil {
			return fmt.Errorf("decode server reply: %w", err)
		}
		row := make([]string, len(cols))
		for i, c := range cols {
			v, ok := obj[c.Field]
			if !ok {
				row[i] = c.Empty
				continue
			}
			row[i] = truncate(cell(v), maxCell)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return p.writeTrimmed(buf.Bytes())
}

// writeTrimmed writes b without the spaces tabwriter leaves after an empty
// last column.
func (p printer) writeTrimmed(b []byte) error {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		nl := bytes.HasSuffix(line, []byte("\n"))
		out.Write(bytes.TrimRight(line, " \n"))
		if nl {
			out.WriteByte('\n')
		}
	}
	_, err := p.out.Write(out.Bytes())
	return err
}

// fields writes a JSON object as sorted FIELD VALUE lines.
func (p printer) fields(doc []byte) error {
	var obj map[string]any
	if err := decodeJSON(doc, &obj); err != nil {
		return p.json(doc) // not an object: JSON is the only sensible table
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(obj[k]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return p.writeTrimmed(buf.Bytes())
}

// cell renders one JSON value for a table: scalars as text, lists of
// scalars joined with commas, anything deeper as compact JSON. Tabs and
// newlines are replaced so that a value never breaks the table.
func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		s = v
	case bool:
		s = strconv.FormatBool(v)
	case json.Number:
		s = v.String()
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			switch e.(type) {
			case map[string]any, []any:
				parts[i] = compact(e)
			default:
				parts[i] = cell(e)
			}
		}
		s = strings.Join(parts, ",")
	default:
		s = compact(v)
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// decodeJSON decodes with json.Number so that large integers print as sent.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// valueOf prints a Go value (params, a token, server info) like value.
func (p printer) valueOf(kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	return p.value(kind, b)
}
