package dhcp

import (
	"encoding/binary"
	"testing"
)

func TestChecksum(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint16
	}{
		{"rfc 1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, ^uint16(0xddf2)},
		{"odd length pads with zero", []byte{0x01}, ^uint16(0x0100)},
		{"empty", nil, 0xffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checksum(tt.in); got != tt.want {
				t.Errorf("checksum = %#04x, want %#04x", got, tt.want)
			}
		})
	}
}

func TestEchoRequest(t *testing.T) {
	m := echoRequest(0x1234, 0xbeef)
	if m[0] != 8 || m[1] != 0 {
		t.Fatalf("type/code %d/%d, want 8/0 (echo request)", m[0], m[1])
	}
	if id, seq := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:]); id != 0x1234 || seq != 0xbeef {
		t.Fatalf("id %#x seq %#x", id, seq)
	}
	// A correct checksum makes the whole message sum to 0xffff.
	if got := checksum(m); got != 0 {
		t.Fatalf("checksum over the message = %#04x, want 0", got)
	}
}
