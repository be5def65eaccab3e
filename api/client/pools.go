package client

import (
	"context"
	"net/http"

	"github.com/ironcast/ironcast/model"
)

// Allocate asks pool for req.Count ready machines and returns them
// provisioning. Too few ready machines is an *APIError with status 409
// (IsConflict) whose message says how many are ready.
func (c *Client) Allocate(ctx context.Context, pool string, req model.AllocateRequest) ([]*model.Machine, error) {
	b, err := marshalBody(req)
	if err != nil {
		return nil, err
	}
	var out []*model.Machine
	_, err = c.call(ctx, request{method: http.MethodPost, path: objPath(model.KindPools, pool, "allocate"), body: b}, &out)
	return out, err
}

// ReleaseMachines releases the machines uuids of pool (all or none) and
// returns them as released.
func (c *Client) ReleaseMachines(ctx context.Context, pool string, uuids []string) ([]*model.Machine, error) {
	b, err := marshalBody(model.ReleaseRequest{Machines: uuids})
	if err != nil {
		return nil, err
	}
	var out []*model.Machine
	_, err = c.call(ctx, request{method: http.MethodPost, path: objPath(model.KindPools, pool, "release"), body: b}, &out)
	return out, err
}

// PoolStatus returns pool's machine counts.
func (c *Client) PoolStatus(ctx context.Context, pool string) (*model.PoolStatus, error) {
	var out model.PoolStatus
	if _, err := c.call(ctx, request{method: http.MethodGet, path: objPath(model.KindPools, pool, "status")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
