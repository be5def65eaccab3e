package cli

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// isolate points the config and cache directories at a fresh temporary
// directory and
// clears the IRONCAST_* variables, so that the tester's own settings never
// leak into a test. It returns the config directory.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	t.Setenv("HOME", dir)
	for _, k := range []string{envEndpoint, envToken, envUsername, envPassword, envCACert, envInsecure, envNoTokenCache} {
		t.Setenv(k, "")
	}
	return dir
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
