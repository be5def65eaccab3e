package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "m.yaml", "Name: n1\n")
	tests := []struct {
		name      string
		arg, file string
		stdin     string
		want      string
		wantErr   string
		wantUsage bool
	}{
		{name: "argument", arg: `{"Name":"n1"}`, want: `{"Name":"n1"}`},
		{name: "stdin", arg: "-", stdin: "Name: n2\n", want: "Name: n2\n"},
		{name: "@file", arg: "@" + file, want: "Name: n1\n"},
		{name: "-f file", file: file, want: "Name: n1\n"},
		{name: "missing @file", arg: "@" + dir + "/nope", wantErr: "no such file"},
		{name: "both argument and -f", arg: "{}", file: file, wantErr: "not both", wantUsage: true},
		{name: "nothing", wantErr: "missing object", wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readInput(tt.arg, tt.file, strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readInput() err = %v, want %q", err, tt.wantErr)
				}
				var ue *usageError
				if got := errors.As(err, &ue); got != tt.wantUsage {
					t.Errorf("usage error = %v, want %v", got, tt.wantUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("readInput() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

var parseObjectTests = []struct {
	name    string
	in      string
	want    string
	wantErr string
}{
	{name: "json", in: `{"Name": "n1", "HardwareAddrs": ["52:54:00:12:34:56"]}`, want: `{"Name":"n1","HardwareAddrs":["52:54:00:12:34:56"]}`},
	{name: "json keeps big integers", in: `{"N": 12345678901234567890}`, want: `{"N":12345678901234567890}`},
	{name: "json with surrounding space", in: "\n  {\"a\":1}  \n", want: `{"a":1}`},
	{name: "json is not yaml 1.1", in: `{"Name": "on"}`, want: `{"Name":"on"}`},
	{name: "yaml block", in: "Name: n1\nHardwareAddrs:\n  - 52:54:00:12:34:56\nParams:\n  ntp: [1.2.3.4]\n", want: `{"HardwareAddrs":["52:54:00:12:34:56"],"Name":"n1","Params":{"ntp":["1.2.3.4"]}}`},
	{name: "yaml flow", in: "{Name: n1, Arch: arm64}", want: `{"Arch":"arm64","Name":"n1"}`},
	{name: "empty object", in: "{}", want: `{}`},
	{name: "empty input", in: "  \n", wantErr: "empty input"},
	{name: "a list", in: `[{"Name":"n1"}]`, wantErr: "want an object, got a list"},
	{name: "a string", in: "hello", wantErr: "want an object, got a string"},
	{name: "a number", in: "42", wantErr: "want an object, got a number"},
	{name: "yaml null", in: "~", wantErr: "want an object, got a null"},
	{name: "json trailing comma is accepted as yaml", in: `{"Name": "n1",}`, want: `{"Name":"n1"}`},
	{name: "broken json", in: `{"Name": "n1"`, wantErr: "invalid JSON: unexpected EOF"},
	{name: "broken yaml", in: "Name: [n1\n", wantErr: "invalid YAML"},
	{name: "two json values", in: `{"a":1} {"b":2}`, wantErr: "more than one value"},
	{name: "two yaml documents", in: "a: 1\n---\nb: 2\n", wantErr: "2 documents"},
}

func TestParseObject(t *testing.T) {
	for _, tt := range parseObjectTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseObject([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseObject() = %s, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("parseObject() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func FuzzParseObject(f *testing.F) {
	for _, tt := range parseObjectTests {
		f.Add(tt.in)
	}
	f.Add("a: &x [1]\nb: *x\n")
	f.Add("'a': \"\\u00e9<>&\"")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseObject([]byte(in))
		if err != nil {
			return
		}
		// What parses is one JSON object, and parsing it again is a no-op.
		var m map[string]any
		if err := decodeJSON(got, &m); err != nil || m == nil {
			t.Fatalf("parseObject(%q) = %s, not a JSON object: %v", in, got, err)
		}
		again, err := parseObject(got)
		if err != nil {
			t.Fatalf("parseObject(%s) (second pass): %v", got, err)
		}
		if string(again) != string(got) {
			t.Fatalf("second pass changed %s into %s", got, again)
		}
	})
}

var parsePatchTests = []struct {
	name    string
	in      string
	want    string
	wantErr string
}{
	{name: "json", in: `[{"op":"replace","path":"/Name","value":"n2"}]`, want: `[{"op":"replace","path":"/Name","value":"n2"}]`},
	{name: "yaml", in: "- op: add\n  path: /Profiles/-\n  value: p1\n", want: `[{"op":"add","path":"/Profiles/-","value":"p1"}]`},
	{name: "empty list", in: "[]", want: "[]"},
	{name: "an object", in: `{"Name":"n2"}`, wantErr: "want a JSON Patch"},
	{name: "operation without op", in: `[{"path":"/Name"}]`, wantErr: "patch operation 0"},
	{name: "operation not an object", in: `[1]`, wantErr: "patch operation 0"},
}

func TestParsePatch(t *testing.T) {
	for _, tt := range parsePatchTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePatch([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePatch() = %s, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("parsePatch() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func FuzzParsePatch(f *testing.F) {
	for _, tt := range parsePatchTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parsePatch([]byte(in))
		if err != nil {
			return
		}
		var ops []map[string]any
		if err := json.Unmarshal(got, &ops); err != nil {
			t.Fatalf("parsePatch(%q) = %s, not a list of objects: %v", in, got, err)
		}
		for i, op := range ops {
			if s, _ := op["op"].(string); s == "" {
				t.Fatalf("parsePatch(%q): operation %d has no op: %s", in, i, got)
			}
		}
	})
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "number", in: "42", want: "42"},
		{name: "bool", in: "true", want: "true"},
		{name: "null", in: "null", want: "null"},
		{name: "quoted string", in: `"42"`, want: `"42"`},
		{name: "list", in: `[ "a", 1 ]`, want: `["a",1]`},
		{name: "object", in: `{"a": 1}`, want: `{"a":1}`},
		{name: "bare word", in: "debian-12", want: `"debian-12"`},
		{name: "address", in: "10.0.0.1", want: `"10.0.0.1"`},
		{name: "empty", in: "", want: `""`},
		{name: "broken json is a string", in: `{"a":`, want: `"{\"a\":"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(parseValue(tt.in)); got != tt.want {
				t.Errorf("parseValue(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
