package bolt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"
)

// Restore replaces the store file at path with the snapshot read from src
// (as written by Backup). The snapshot is written to a temporary file next
// to path, fsync'ed, and checked: it must open as a bbolt database, pass
// bbolt's consistency check and hold an ironcast store's meta bucket. Only
// then is it renamed over path, so path holds either the old store or the
// whole new one. Restore must not run while a Store has path open.
func Restore(src io.Reader, path string) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".restore-*")
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, src); err != nil {
		return fmt.Errorf("restore %s: copy snapshot: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("restore %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := Verify(tmp.Name()); err != nil {
		return fmt.Errorf("restore %s: snapshot: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	return nil
}

// RestoreFile is Restore from the snapshot file src.
func RestoreFile(src, path string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	defer f.Close()
	return Restore(f, path)
}

// Verify opens the file at path read-only and checks that it is a sound
// bbolt database (Tx.Check) holding an ironcast store. It must not run
// while a Store has path open for writing.
func Verify(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return errors.New("empty file, not a bolt database")
	}
	if err := checkFile(path); err != nil {
		return err
	}
	var db *bbolt.DB
	err = guard(func() (err error) {
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: defaultTimeout})
		return err
	})
	if err != nil {
		return openError(err)
	}
	defer db.Close()
	return guard(func() error { return db.View(verifyTx) })
}

// verifyTx runs bbolt's consistency check, then looks for the meta bucket.
func verifyTx(tx *bbolt.Tx) (err error) {
	for cerr := range tx.Check() {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("corrupted: consistency check: %w", err)
	}
	if err := checkMeta(tx); err != nil {
		if errors.Is(err, errNoMeta) {
			return errors.New("not an ironcast store: no meta bucket")
		}
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
