//go:build !linux

package bootfiles

import (
	"errors"
	"syscall"
)

var errNoExchange = errors.New("atomic exchange not supported")

// exchange is not available outside Linux; swap falls back to two renames.
func (s *Store) exchange(parent, a, b string) error { return errNoExchange }

// syncFS flushes every filesystem.
func (s *Store) syncFS() error {
	syscall.Sync()
	return nil
}
