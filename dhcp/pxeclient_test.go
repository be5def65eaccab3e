package dhcp_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/test/testenv"
	"golang.org/x/sys/unix"
)

// pxeClient behaves like PXE firmware in front of a proxyDHCP server: it
// collects every OFFER to its DISCOVER, takes the address from one
// server and asks the boot server on port 4011 for its boot file.
type pxeClient struct {
	conn *net.UDPConn
	mac  net.HardwareAddr
	arch uint16
	xid  dhcpv4.TransactionID
}

// newPXEClient opens UDP port 68 on ifc inside ns.
func newPXEClient(ns *testenv.Netns, ifc string, mac net.HardwareAddr, arch uint16) (*pxeClient, error) {
	c := &pxeClient{mac: mac, arch: arch, xid: dhcpv4.TransactionID{0x1c, 0xa5, 0x70, 0x01}}
	err := ns.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr == nil {
					serr = unix.BindToDevice(int(fd), ifc)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		c.conn = pc.(*net.UDPConn)
		return nil
	})
	return c, err
}

func (c *pxeClient) Close() error { return c.conn.Close() }

func (c *pxeClient) packet(typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	p, _ := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithTransactionID(c.xid),
		dhcpv4.WithHwAddr(c.mac),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:003016", c.arch))),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, binary.BigEndian.AppendUint16(nil, c.arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, []byte("ironcast-pxe-uid")...)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName, dhcpv4.OptionTFTPServerName, dhcpv4.OptionVendorSpecificInformation),
	}, mods...)...)
	return p
}

// exchange sends p to dst and collects replies of type want until done
// says it has enough or the deadline passes.
func (c *pxeClient) exchange(p *dhcpv4.DHCPv4, dst *net.UDPAddr, want dhcpv4.MessageType, done func([]*dhcpv4.DHCPv4) bool) ([]*dhcpv4.DHCPv4, error) {
	var got []*dhcpv4.DHCPv4
	deadline := time.Now().Add(15 * time.Second)
	buf := make([]byte, 1500)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if _, err := c.conn.WriteToUDP(p.ToBytes(), dst); err != nil {
			return nil, err
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := c.conn.ReadFromUDP(buf)
			if err != nil {
				break // retransmit, like firmware
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.TransactionID != c.xid || r.OpCode != dhcpv4.OpcodeBootReply || r.MessageType() != want {
				continue
			}
			got = append(got, r)
			if done(got) {
				return got, nil
			}
		}
	}
	return got, fmt.Errorf("%d %s replies before the deadline", len(got), want)
}
