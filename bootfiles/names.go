package bootfiles

import (
	"strings"
	"unicode/utf8"

	"github.com/ironcast/ironcast/model"
)

// Limits on client-given names and paths.
const (
	// MaxNameLen is the longest path component, as most filesystems allow.
	MaxNameLen = 255
	// MaxPathLen is the longest path below the root.
	MaxPathLen = 1024
	// MaxDepth is the most components a path may have.
	MaxDepth = 32
)

// tempPrefix starts the names of every temporary entry this package makes.
const tempPrefix = ".ironcast-"

// isoDir is the directory of uploaded ISOs below the root.
const isoDir = "isos"

// CleanName checks an ISO name given by a client ("ubuntu-24.04.1-live-
// server-amd64.iso"): one path component of letters, digits and
// "._+~@=,-", not starting with a dot, at most MaxNameLen bytes. It
// returns a *model.ValidationError for field "name".
func CleanName(name string) error {
	if msg := componentProblem(name); msg != "" {
		return model.Invalid("name", "%q %s", name, msg)
	}
	return nil
}

// CleanPath checks a path below the root given by a client
// ("discovery/amd64/vmlinuz") and returns it without leading slashes.
// Every component follows the CleanName rules; empty components ("a//b"),
// "." and ".." are refused, as are paths longer than MaxPathLen bytes or
// MaxDepth components. It returns a *model.ValidationError for field
// "path".
func CleanPath(p string) (string, error) {
	clean := strings.TrimLeft(p, "/")
	if clean == "" {
		return "", model.Invalid("path", "%q is empty", p)
	}
	if len(clean) > MaxPathLen {
		return "", model.Invalid("path", "is longer than %d bytes", MaxPathLen)
	}
	parts := strings.Split(clean, "/")
	if len(parts) > MaxDepth {
		return "", model.Invalid("path", "%q has more than %d components", p, MaxDepth)
	}
	for _, c := range parts {
		if msg := componentProblem(c); msg != "" {
			return "", model.Invalid("path", "%q: component %q %s", p, c, msg)
		}
	}
	return clean, nil
}

// componentProblem says what is wrong with one client-given component,
// or "" when nothing is.
func componentProblem(c string) string {
	switch {
	case c == "":
		return "is empty"
	case c == "." || c == "..":
		return "is a relative reference (no . or .. components)"
	case len(c) > MaxNameLen:
		return "is longer than 255 bytes"
	case c[0] == '.':
		return "starts with a dot"
	}
	for i := 0; i < len(c); i++ {
		if !portable(c[i]) {
			return "may only hold letters, digits and ._+~@=,-"
		}
	}
	return ""
}

func portable(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("._+~@=,-", b) >= 0
}

// imageName reports whether a name read from an ISO may be written to
// disk: valid UTF-8 of 1 to MaxNameLen bytes with no slash, NUL or
// control character, not "." or "..", and not one of our temporary names.
func imageName(n string) bool {
	if n == "" || n == "." || n == ".." || len(n) > MaxNameLen || !utf8.ValidString(n) || strings.HasPrefix(n, tempPrefix) {
		return false
	}
	for _, r := range n {
		if r == '/' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// plainName maps an ISO 9660 identifier without Rock Ridge to the name
// Linux shows by default (mount option map=normal): lower case, no ";1"
// version, no trailing dot.
func plainName(n string) string {
	if i := strings.IndexByte(n, ';'); i >= 0 {
		n = n[:i]
	}
	n = strings.TrimSuffix(n, ".")
	return strings.ToLower(n)
}
