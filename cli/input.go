package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// maxInput bounds what the CLI reads from a file or stdin, so that a wrong
// redirect (a disk image, /dev/zero) fails instead of eating memory.
const maxInput = 64 << 20

// readInput returns the document named by arg: "-" reads in, "@path" reads
// the file path, anything else is the document itself. file, from -f, wins
// when set and arg must then be empty.
func readInput(arg, file string, in io.Reader) ([]byte, error) {
	switch {
	case file != "" && arg != "":
		return nil, usageErrorf("give the object either as an argument or with -f, not both")
	case file != "":
		return readFile(file)
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(in, maxInput+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if len(b) > maxInput {
			return nil, fmt.Errorf("read stdin: more than %d bytes", maxInput)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		return readFile(arg[1:])
	case arg == "":
		return nil, usageErrorf("missing object: give JSON or YAML, @FILE, -f FILE or - for stdin")
	}
	return []byte(arg), nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file and the operation
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("read %s: more than %d bytes", path, maxInput)
	}
	return b, nil
}

// toJSON converts one JSON or YAML document into compact JSON. A document
// that starts with '{' or '[' and is valid JSON is taken as JSON, so that
// JSON input never meets YAML 1.1's surprises ("on" meaning true);
// otherwise it is read as YAML, which also accepts flow style such as
// {Name: n1}. More than one document is an error, never a silent drop.
func toJSON(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty input")
	}
	var jsonErr error // set when b looks like JSON but is not
	if b[0] == '{' || b[0] == '[' {
		d := json.NewDecoder(bytes.NewReader(b))
		var raw json.RawMessage
		if jsonErr = d.Decode(&raw); jsonErr == nil {
			if _, err := d.Token(); err != io.EOF {
				return nil, errors.New("invalid JSON: more than one value")
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			return buf.Bytes(), nil
		}
	}
	n, err := yamlDocs(b)
	if err == nil && n > 1 {
		err = fmt.Errorf("%d documents, want one", n)
	}
	var out []byte
	if err == nil {
		out, err = yaml.YAMLToJSON(b)
	}
	switch {
	case err == nil:
		return out, nil
	case jsonErr != nil:
		return nil, fmt.Errorf("invalid JSON: %w", jsonErr)
	}
	return nil, fmt.Errorf("invalid YAML: %w", err)
}

// yamlDocs counts the YAML documents in b.
func yamlDocs(b []byte) (int, error) {
	d := yamlv2.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		var v any
		err := d.Decode(&v)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// jsonType names the JSON type of a compact JSON value, for messages.
func jsonType(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "list"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// parseObject converts a JSON or YAML document into a compact JSON object.
// The CLI does not check fields: the server validates and names every
// problem, so that the CLI never disagrees with it.
func parseObject(b []byte) (json.RawMessage, error) {
	out, err := toJSON(b)
	if err != nil {
		return nil, err
	}
	if t := jsonType(out); t != "object" {
		return nil, fmt.Errorf("want an object, got a %s", t)
	}
	return out, nil
}

// patchOp is one RFC 6902 operation, for checking the shape of a patch.
type patchOp struct {
	Op   string `json:"op"`
	Path string `json:"path"`
}

// parsePatch converts a JSON or YAML document into an RFC 6902 JSON Patch:
// a list of operations, each with an op and a path.
func parsePatch(b []byte) (json.RawMessage, error) {
	out, err := toJSON(b)
	if err != nil {
		return nil, err
	}
	if t := jsonType(out); t != "list" {
		return nil, fmt.Errorf("want a JSON Patch (a list of operations), got a %s", t)
	}
	var ops []json.RawMessage
	if err := json.Unmarshal(out, &ops); err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	for i, raw := range ops {
		var op patchOp
		if json.Unmarshal(raw, &op) != nil || op.Op == "" {
			return nil, fmt.Errorf("patch operation %d: want an object with \"op\" and \"path\"", i)
		}
	}
	return out, nil
}

// parseValue reads a param value: JSON when it parses as JSON (42, true,
// "x", [1,2], {"a":1}, null), otherwise the text itself as a string.
func parseValue(s string) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, []byte(strings.TrimSpace(s))) == nil && buf.Len() > 0 {
		return buf.Bytes()
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
