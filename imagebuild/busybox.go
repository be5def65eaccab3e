package imagebuild

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
)

// requiredApplets are the busybox applets the init scripts use. A busybox
// without one of them cannot run the image, so the build stops early.
var requiredApplets = []string{
	"awk", "cat", "cttyhack", "dd", "grep", "head", "insmod", "ip", "mkdir",
	"mount", "od", "reboot", "sed", "setsid", "sh", "sleep", "sync", "timeout",
	"tr", "udhcpc", "uname", "wget",
}

// busyboxApplets returns the applet names compiled into a busybox binary,
// read from the binary itself so that a foreign-architecture busybox (arm64
// on an amd64 host) needs no emulator. Busybox keeps its applet names in one
// sorted table of NUL-terminated strings that always begins with "[" and
// "[[" (applet_tables.h); the table ends at the first empty string.
func busyboxApplets(bin []byte) ([]string, error) {
	i := bytes.Index(bin, []byte("\x00[\x00[[\x00"))
	if i < 0 {
		return nil, errors.New("busybox applet table not found (no \"[\" and \"[[\" applets)")
	}
	var names []string
	for p := i + 1; p < len(bin); {
		end := bytes.IndexByte(bin[p:], 0)
		if end <= 0 {
			break
		}
		name := string(bin[p : p+end])
		if !validApplet(name) {
			break
		}
		names = append(names, name)
		p += end + 1
	}
	if !sort.StringsAreSorted(names) {
		return nil, errors.New("busybox applet table is not sorted; not an applet table")
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	var missing []string
	for _, r := range requiredApplets {
		if !have[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("busybox lacks applets %v (found %d applets)", missing, len(names))
	}
	return names, nil
}

func validApplet(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
