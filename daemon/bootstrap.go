package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/ironcast/ironcast/model"
)

// userCreator is the one thing bootstrap needs from provision.
type userCreator interface {
	Get(ctx context.Context, kind, key string) (model.Object, error)
	List(ctx context.Context, kind string) ([]model.Object, error)
	Create(ctx context.Context, obj model.Object) error
}

// ensureAdmin creates the admin user with a random password on first start
// (when no user exists), writes the password to a 0600 file in dataDir and
// tells out where it is. The password itself is never logged or printed.
// It returns the password file's path.
func ensureAdmin(ctx context.Context, svc userCreator, dataDir string, out io.Writer) (string, error) {
	path := filepath.Join(dataDir, "admin-password")
	users, err := svc.List(ctx, model.KindUsers)
	if err != nil {
		return "", fmt.Errorf("list users: %w", err)
	}
	if len(users) > 0 {
		return path, nil
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	pw := base64.RawURLEncoding.EncodeToString(b)
	if err := writeFileAtomic(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	u := &model.User{Name: "admin", Role: model.RoleAdmin, Password: pw, Description: "Created on first start."}
	if err := svc.Create(ctx, u); err != nil && !errors.Is(err, model.ErrExists) {
		return "", fmt.Errorf("create admin user: %w", err)
	}
	fmt.Fprintf(out, "ironcast: created user admin; its password is in %s (mode 0600)\n", path)
	return path, nil
}
