package auth

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/ironcast/ironcast/model"
)

// apiPrefix is where the API lives; Authorize sees full request paths.
const apiPrefix = "/api/v1/"

// Authorize decides whether p may send method to the escaped request path
// urlPath (decode: the request asks for secure values in clear). It returns
// nil or an error wrapping ErrForbidden. The rules:
//
//   - admin: everything.
//   - operator: everything except writes under /api/v1/users and the
//     backup; it may still renew its own token.
//   - readonly: GET and HEAD only, never decode; it may renew its own token.
//   - a MachineScope token: GET/HEAD of its own machine and anything below
//     it (params, aggregate params, metadata), and POST below its own
//     /callbacks, and POST /api/v1/machines/register, which the API binds
//     to its own machine (a known machine booting discovery again). No
//     listing, no other machine, never decode.
//   - a ScopeRegister token: POST /api/v1/machines/register only.
//   - every principal may GET /api/v1/whoami.
//
// Paths that are not clean (".", "..", "//") are refused for everyone but
// admin, so that a prefix check cannot be walked around.
func Authorize(p *Principal, method, urlPath string, decode bool) error {
	if p == nil {
		return fmt.Errorf("no principal: %w", ErrUnauthenticated)
	}
	read := method == http.MethodGet || method == http.MethodHead
	if read && urlPath == apiPrefix+"whoami" {
		return nil
	}
	clean := path.Clean(urlPath) == strings.TrimSuffix(urlPath, "/") || path.Clean(urlPath) == urlPath
	segs := strings.Split(strings.Trim(strings.TrimPrefix(urlPath, apiPrefix), "/"), "/")
	deny := func(why string) error {
		return fmt.Errorf("%s may not %s %s: %s: %w", p.Name, method, urlPath, why, ErrForbidden)
	}
	if p.Scope != "" {
		if !clean || !strings.HasPrefix(urlPath, apiPrefix) {
			return deny("token scope " + p.Scope)
		}
		if decode {
			return deny("secure values are shown to admins and operators only")
		}
		if p.Scope == ScopeRegister {
			if method == http.MethodPost && len(segs) == 2 && segs[0] == model.KindMachines && segs[1] == "register" {
				return nil
			}
			return deny("a registration token may only register a machine")
		}
		uuid, ok := p.Machine()
		if ok && method == http.MethodPost && len(segs) == 2 && segs[0] == model.KindMachines && segs[1] == "register" {
			return nil // the API binds the registration to uuid
		}
		if !ok || len(segs) < 2 || segs[0] != model.KindMachines || segs[1] != uuid {
			return deny("a machine token may only reach its own machine")
		}
		if read {
			return nil
		}
		if method == http.MethodPost && len(segs) >= 3 && segs[2] == "callbacks" {
			return nil
		}
		return deny("a machine token may only read its machine and post its callbacks")
	}
	ownToken := method == http.MethodPost && len(segs) == 3 && segs[0] == model.KindUsers && segs[1] == p.Name && segs[2] == "token"
	switch p.Role {
	case model.RoleAdmin:
		return nil
	case model.RoleOperator:
		if !clean {
			return deny("path is not clean")
		}
		if segs[0] == "backup" {
			return deny("backups are for admins")
		}
		if segs[0] == model.KindUsers && !read && !ownToken {
			return deny("managing users is for admins")
		}
		return nil
	case model.RoleReadOnly:
		if !clean {
			return deny("path is not clean")
		}
		if decode {
			return deny("secure values are shown to admins and operators only")
		}
		if segs[0] == "backup" {
			return deny("backups are for admins")
		}
		if read || ownToken {
			return nil
		}
		return deny("role readonly may only read")
	}
	return deny("unknown role " + string(p.Role))
}
