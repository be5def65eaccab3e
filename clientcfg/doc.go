// Package clientcfg holds the files that tell the ironcast CLI where its
// server is and how to log in, without flags.
//
// Two files live here. The local-server file (LocalServer, Path, Write,
// Read) is written by a running `ironcast serve` so that the CLI on the same
// machine, run by the same user, finds the endpoint, the CA certificate and
// the admin password file. The user config file (File, ConfigPath,
// ReadFile) holds what an operator would otherwise pass as flags. The
// token cache (CachedToken, ReadToken, WriteToken, RemoveToken) in the
// user's cache directory keeps the token the CLI got by logging in, so
// that the next call need not send the password again.
//
// The package uses only the standard library and sigs.k8s.io/yaml. Its
// functions touch the file system only; they are safe for concurrent use
// as far as the file system is.
package clientcfg
