package bootfiles

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errNoExchange means the filesystem cannot exchange two entries
// atomically.
var errNoExchange = errors.New("atomic exchange not supported")

// exchange swaps the entries a and b of the directory parent (below the
// root) with renameat2(RENAME_EXCHANGE). The names are single components
// resolved in a directory opened through the root, so neither can lead
// out of it.
func (s *Store) exchange(parent, a, b string) error {
	d, err := s.root.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	err = unix.Renameat2(fd, a, fd, b, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EXDEV):
		return errNoExchange
	}
	return fmt.Errorf("exchange %s and %s: %w", a, b, err)
}

// syncFS flushes the boot root's filesystem with syncfs(2): one call
// instead of an fsync per extracted file.
func (s *Store) syncFS() error {
	d, err := s.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
