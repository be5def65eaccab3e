package provision

import (
	"sync"

	"github.com/ironcast/ironcast/model"
)

// firmwareCache remembers the firmware each MAC last reported over DHCP,
// so that renders (which arrive over HTTP or TFTP without that knowledge)
// can pick the architecture of a machine not registered yet. It holds at
// most max entries and forgets the oldest beyond that.
type firmwareCache struct {
	mu    sync.Mutex
	max   int
	m     map[string]model.Firmware
	order []string
}

func newFirmwareCache(max int) *firmwareCache {
	return &firmwareCache{max: max, m: map[string]model.Firmware{}}
}

func (c *firmwareCache) put(mac string, f model.Firmware) {
	if mac == "" || f == model.FirmwareUnknown {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[mac]; !ok {
		c.order = append(c.order, mac)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.m[mac] = f
}

func (c *firmwareCache) get(mac string) model.Firmware {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[mac]
}

func (s *Service) firmwareOf(mac string) model.Firmware { return s.firmware.get(mac) }
