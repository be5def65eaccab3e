package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ironcast/ironcast/clientcfg"
)

// Environment variables read by the CLI.
const (
	envEndpoint = "IRONCAST_ENDPOINT"
	envToken    = "IRONCAST_TOKEN"
	envUsername = "IRONCAST_USERNAME"
	envPassword = "IRONCAST_PASSWORD"
	envCACert   = "IRONCAST_CA_CERT"
	envInsecure = "IRONCAST_INSECURE"
)

// conn is where and how the CLI talks to the API, after every source has
// been merged. Empty fields are unset.
type conn struct {
	Endpoint string
	Token    string
	Username string
	Password string
	CACert   string
	Insecure *bool
	// From says which source gave the endpoint, for error messages.
	From string
}

// overlay fills the unset fields of c from lower.
func (c *conn) overlay(lower conn) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	if c.Endpoint == "" && lower.Endpoint != "" {
		c.Endpoint, c.From = lower.Endpoint, lower.From
	}
	fill(&c.Token, lower.Token)
	fill(&c.Username, lower.Username)
	fill(&c.Password, lower.Password)
	fill(&c.CACert, lower.CACert)
	if c.Insecure == nil {
		c.Insecure = lower.Insecure
	}
}

// connFromEnv reads the IRONCAST_* variables.
func connFromEnv() (conn, error) {
	c := conn{
		Endpoint: os.Getenv(envEndpoint),
		Token:    os.Getenv(envToken),
		Username: os.Getenv(envUsername),
		Password: os.Getenv(envPassword),
		CACert:   os.Getenv(envCACert),
		From:     envEndpoint,
	}
	if s := os.Getenv(envInsecure); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return conn{}, fmt.Errorf("%s=%q is not a boolean", envInsecure, s)
		}
		c.Insecure = &v
	}
	return c, nil
}

// connFromFile reads the config file at path. A missing file is fine unless
// the user named it explicitly.
func connFromFile(path string, explicit bool) (conn, error) {
	f, err := clientcfg.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return conn{}, nil
		}
		return conn{}, err
	}
	return conn{
		Endpoint: f.Endpoint, Token: f.Token, Username: f.Username,
		Password: f.Password, CACert: f.CACert, Insecure: f.Insecure,
		From: "config file " + path,
	}, nil
}

// applyLocal fills c from a local `ironcast serve`'s file, the lowest
// source. It is used only when nothing else chose an endpoint, or chose the
// same one: a CA and a password meant for this machine's server are never
// sent anywhere else. The admin password is read from its file only when
// no credentials were given at all.
func (c *conn) applyLocal(ls clientcfg.LocalServer) error {
	if ls.Endpoint == "" || (c.Endpoint != "" && c.Endpoint != ls.Endpoint) {
		return nil
	}
	if c.Endpoint == "" {
		c.Endpoint, c.From = ls.Endpoint, "local server file "+clientcfg.Path()
	}
	if c.CACert == "" && c.Insecure == nil {
		c.CACert = ls.CACertFile
	}
	user := ls.Username
	if user == "" {
		user = "admin"
	}
	if c.Token != "" || c.Password != "" || ls.PasswordFile == "" || (c.Username != "" && c.Username != user) {
		return nil
	}
	pw, err := readPasswordFile(ls.PasswordFile)
	if err != nil {
		return fmt.Errorf("no credentials given, and the local server's password is unreadable (%w): pass --token or --username/--password, or run as the user that runs ironcast serve", err)
	}
	c.Username, c.Password = user, pw
	return nil
}

// readPasswordFile returns the first line of path.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pw := strings.TrimRight(string(line), "\r")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

// noTokenCache reports whether the token cache is off: --no-token-cache,
// else IRONCAST_NO_TOKEN_CACHE.
func (a *app) noTokenCache(flags *pflag.FlagSet) (bool, error) {
	if f := flags.Lookup("no-token-cache"); f != nil && f.Changed {
		return a.noCache, nil
	}
	s := os.Getenv(envNoTokenCache)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not a boolean", envNoTokenCache, s)
	}
	return v, nil
}

// tokenDirHelp names the token cache directory for --help.
func tokenDirHelp() string {
	if d, err := clientcfg.TokenDir(); err == nil {
		return d
	}
	return "the user cache directory"
}

// resolveConn merges the sources in precedence order: flags, environment,
// config file, local-server file. fs is the running command's flag set.
func (a *app) resolveConn(flags *pflag.FlagSet) (conn, error) {
	c := a.flags
	c.From = "--endpoint"
	if f := flags.Lookup("insecure"); f != nil && f.Changed {
		v := a.insecure
		c.Insecure = &v
	}
	env, err := connFromEnv()
	if err != nil {
		return conn{}, err
	}
	c.overlay(env)

	path, explicit := a.configPath, a.configPath != ""
	if !explicit {
		path = clientcfg.ConfigPath()
	}
	file, err := connFromFile(path, explicit)
	if err != nil {
		return conn{}, err
	}
	c.overlay(file)

	ls, err := clientcfg.Read()
	switch {
	case err == nil:
		if err := c.applyLocal(ls); err != nil {
			return conn{}, err
		}
	case c.Endpoint == "" && !errors.Is(err, fs.ErrNotExist):
		return conn{}, err
	}
	if c.Endpoint == "" {
		return conn{}, fmt.Errorf("no API endpoint: pass --endpoint, set %s or put endpoint in %s (no local server has written %s)",
			envEndpoint, path, clientcfg.Path())
	}
	return c, nil
}
