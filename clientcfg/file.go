package clientcfg

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// File is the user config file: the same settings as the CLI's global
// flags, under the flag names. A missing key means "not set here".
//
//	endpoint: https://ironcast.example.net:8092
//	username: alice
//	ca-cert: /etc/ironcast/ca.pem
type File struct {
	Endpoint string `json:"endpoint,omitempty"`
	Token    string `json:"token,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	CACert   string `json:"ca-cert,omitempty"`
	// Insecure is a pointer so that "insecure: false" can override a
	// lower-precedence source.
	Insecure *bool `json:"insecure,omitempty"`
}

// ConfigPath returns the default user config file:
// $XDG_CONFIG_HOME/ironcast/config.yaml, or ~/.config/ironcast/config.yaml.
func ConfigPath() string { return filepath.Join(configDir(), "config.yaml") }

// ReadFile loads a config file written in YAML (or JSON). Unknown keys are
// an error, so that a typo does not silently fall back to a default. When
// the file does not exist the error wraps fs.ErrNotExist.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read config file: %w", err)
	}
	f, err := parseFile(b)
	if err != nil {
		return File{}, fmt.Errorf("parse config file %s: %w", path, err)
	}
	return f, nil
}

// parseFile decodes a config file's contents strictly.
func parseFile(b []byte) (File, error) {
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return File{}, err
	}
	return f, nil
}
