package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/tftp"
)

// TestTFTPMaxTransfers runs Run with TFTP on 127.0.0.1 and a cap of one
// transfer: while a first client holds its transfer open (it never
// acknowledges block 1), a second client's request is refused with a
// TFTP error packet.
func TestTFTPMaxTransfers(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tftpPort := udp.LocalAddr().(*net.UDPAddr).Port
	udp.Close()
	cfg := Config{DataDir: t.TempDir(), ListenAddr: "127.0.0.1", APIPort: freePort(t), HTTPPort: freePort(t),
		TFTPAddrs: []string{"127.0.0.1"}, TFTPPort: tftpPort, TFTPMaxTransfers: 1,
		BootProgramDirs: []string{t.TempDir()}}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "boot", "big.bin"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	runDaemon(t, cfg)

	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tftpPort}
	rrq := append([]byte{0, 1}, "big.bin\x00octet\x00"...)
	request := func() (opcode uint16, pkt []byte) {
		t.Helper()
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.WriteToUDP(rrq, server); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1024)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no answer to RRQ from %s: %v", c.LocalAddr(), err)
		}
		return binary.BigEndian.Uint16(buf), buf[:n]
	}
	if op, pkt := request(); op != 3 {
		t.Fatalf("first request: opcode %d (%q), want DATA (3)", op, pkt)
	}
	// The first transfer waits for its ACK (retransmitting), so it is
	// still under way.
	op, pkt := request()
	if op != 5 {
		t.Fatalf("second request with --tftp-max-transfers 1: opcode %d (%q), want ERROR (5)", op, pkt)
	}
	t.Logf("refused: code %d %q (port %s)", binary.BigEndian.Uint16(pkt[2:]), pkt[4:len(pkt)-1], strconv.Itoa(tftpPort))
}

func TestTFTPStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"done", nil, 200},
		{"missing", fmt.Errorf("open x: %w", bootfs.ErrNotFound), 404},
		{"refused path", fmt.Errorf("open ../x: %w", bootfs.ErrAccess), 403},
		{"busy", tftp.ErrBusy, 503},
		{"client gone quiet", fmt.Errorf("block 7: %w after 5 retransmissions", tftp.ErrTimeout), 408},
		{"client aborted", fmt.Errorf("%w: client error 8", tftp.ErrAborted), 499},
		{"last ACK missing", fmt.Errorf("%w: %w", tftp.ErrUnacknowledged, fmt.Errorf("block 9: %w after 5 retransmissions", tftp.ErrTimeout)), 200},
		{"render failed", errors.New("template: x:1: missing param"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tftpStatus(tt.err); got != tt.want {
				t.Errorf("tftpStatus(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}
