package model

import (
	"encoding/json"
	"time"
)

// Event is one thing that happened, as delivered on the API's event
// stream: an object created, updated or deleted, or something the servers
// did for a machine (a DHCP offer, a file served, a template rendered).
type Event struct {
	Time time.Time
	// Type is "created", "updated" or "deleted" for objects, and a dotted
	// name for server events: "dhcp.offer", "dhcp.ack", "dhcp.release",
	// "dhcp.decline", "tftp.file", "http.file", "render", "transition".
	Type string
	// Kind and Key name the object the event is about.
	Kind string `json:",omitempty"`
	Key  string `json:",omitempty"`
	// Object is the object after the change (before, for deletes).
	Object json.RawMessage `json:",omitempty" swaggertype:"object"`
	// Attrs carry server event details (addresses, bytes, durations).
	Attrs map[string]any `json:",omitempty"`
}
