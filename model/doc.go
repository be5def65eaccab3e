// Package model is ironcast's domain core: the objects an operator stores
// (Machine, BootEnv, Template, Param, Profile, Subnet, Reservation, Lease,
// Pool, User), their validation, the machine lifecycle, firmware
// classification and the param precedence rules.
//
// The package imports only the standard library. Every other package points
// toward it; it points at nothing. Its values are plain data: they are not
// safe for concurrent mutation, and the package keeps no state of its own.
package model
