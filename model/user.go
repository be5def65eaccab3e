package model

import "errors"

// Role is what a user may do through the API.
type Role string

// Roles, from most to least privileged.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleOperator may do everything except manage users.
	RoleOperator Role = "operator"
	// RoleReadOnly may only read, and never sees secure param values.
	RoleReadOnly Role = "readonly"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleOperator || r == RoleReadOnly
}

// User is an API account. PasswordHash is stored but never shown; Password
// is accepted on create and update only, hashed, and then cleared.
type User struct {
	ObjectMeta
	Name         string
	Role         Role
	Description  string `json:",omitempty"`
	Password     string `json:",omitempty"`
	PasswordHash string `json:",omitempty" swaggerignore:"true"`
}

func (*User) Kind() string                   { return KindUsers }
func (u *User) Key() string                  { return u.Name }
func (u *User) Indexes() map[string][]string { return nil }

// Normalize defaults the role to readonly.
func (u *User) Normalize() {
	if u.Role == "" {
		u.Role = RoleReadOnly
	}
}

// Validate checks the name and role.
func (u *User) Validate() error {
	var errs []error
	if err := validName("Name", u.Name); err != nil {
		errs = append(errs, err)
	}
	if !u.Role.Valid() {
		errs = append(errs, Invalid("Role", "%q is not one of admin, operator, readonly", u.Role))
	}
	if u.Password != "" && len(u.Password) < 8 {
		errs = append(errs, Invalid("Password", "must be at least 8 characters"))
	}
	return errors.Join(errs...)
}

// Sanitized returns a copy safe to show: no password, no hash.
func (u User) Sanitized() *User {
	u.Password, u.PasswordHash = "", ""
	return &u
}
