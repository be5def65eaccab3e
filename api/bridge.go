package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// PublishStoreEvents publishes every committed change of st on bus as a
// model.Event ("created", "updated", "deleted", with the object and its
// revision), so that /api/v1/events reports writes from every component
// (API, DHCP, TFTP), not only the API's. Users lose their password hash.
// It runs until ctx ends (returning nil) or the watch fails.
func PublishStoreEvents(ctx context.Context, st store.Store, bus *events.Bus) error {
	for {
		c, err := st.Watch(ctx, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch store: %w", err)
		}
		for ev := range c {
			bus.Publish(storeEvent(ev))
		}
		if ctx.Err() != nil {
			return nil
		}
		// The watcher fell behind and was dropped: subscribers missed
		// events, which the stream cannot replay; say so and watch again.
		bus.Publish(model.Event{Type: "events.lost", Attrs: map[string]any{"reason": "the store watch fell behind"}})
	}
}

// storeEvent converts a store event, adding the revision to the object.
func storeEvent(ev store.Event) model.Event {
	out := model.Event{Type: string(ev.Type), Kind: ev.Kind, Key: ev.Key}
	obj := model.New(ev.Kind)
	if obj == nil || json.Unmarshal(ev.Value, obj) != nil {
		return out
	}
	obj.GetMeta().Revision = ev.Revision
	if u, ok := obj.(*model.User); ok {
		obj = u.Sanitized()
	}
	if b, err := json.Marshal(obj); err == nil {
		out.Object = b
	}
	return out
}
