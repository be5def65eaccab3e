// Package api is ironcast's authenticated REST API under /api/v1: list,
// get, create, replace, patch and delete for every kind of object, machine
// params, info, Server-Sent Events, backups and tokens, with the generated
// Swagger spec at /swagger/ and Prometheus metrics at /metrics.
//
// The daemon owns the listener and TLS; New returns a Server whose Handler
// it serves. Handlers return errors and writeError maps them to HTTP in one
// place:
//
//   - *model.ValidationError (joined)       422, with Field and Errors
//   - malformed JSON, unknown field, bad query 400, naming the problem
//   - model.ErrNotFound                     404
//   - model.ErrExists, model.ErrConflict, *model.ConflictError,
//     *model.TransitionError                409 (with the current state)
//   - model.ErrReadOnly                     409: the request is well formed
//     and allowed, but the object's state (built in, locked, in use) refuses
//     it, which is what 409 means; 403 stays reserved for "your token may
//     not do this"
//   - auth.ErrUnauthenticated               401 (with WWW-Authenticate)
//   - auth.ErrForbidden                     403
//   - a body over MaxBodyBytes              413
//   - anything else                         500, logged, generic message
//
// Authentication: every path needs "Authorization: Bearer TOKEN" except
// /healthz, /swagger/, /metrics (unless Config.MetricsAuth) and POST
// /api/v1/users/{name}/token, which also accepts HTTP Basic for that user.
// /metrics is unauthenticated by default because Prometheus scrapers
// usually have no token and the metrics hold no secrets (route patterns,
// status codes, durations); set MetricsAuth to require a user token.
//
//	@title						ironcast API
//	@version					1
//	@description				Bare-metal provisioning: machines, bootenvs, templates, params, profiles, subnets, reservations, leases, pools and users.
//	@BasePath					/api/v1
//	@schemes					https
//	@securityDefinitions.apikey	Bearer
//	@in							header
//	@name						Authorization
//	@description				"Bearer " followed by a token from POST /users/{name}/token.
//	@securityDefinitions.basic	Basic
package api
