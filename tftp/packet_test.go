package tftp

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func rrq(op uint16, fields ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

var parseTests = []struct {
	name    string
	pkt     []byte
	want    request
	wantErr bool
}{
	{"plain rrq", rrq(opRRQ, "pxelinux.0", "octet"), request{op: opRRQ, filename: "pxelinux.0", mode: "octet"}, false},
	{"mode case-insensitive", rrq(opRRQ, "a", "OCTET"), request{op: opRRQ, filename: "a", mode: "octet"}, false},
	{"netascii", rrq(opRRQ, "a", "netascii"), request{op: opRRQ, filename: "a", mode: "netascii"}, false},
	{"wrq", rrq(opWRQ, "a", "octet"), request{op: opWRQ, filename: "a", mode: "octet"}, false},
	{"options", rrq(opRRQ, "a", "octet", "BLKSIZE", "1468", "tsize", "0", "windowsize", "8"),
		request{op: opRRQ, filename: "a", mode: "octet", opts: []option{{"blksize", "1468"}, {"tsize", "0"}, {"windowsize", "8"}}}, false},
	{"dangling option name ignored", rrq(opRRQ, "a", "octet", "blksize", "512", "tsize"),
		request{op: opRRQ, filename: "a", mode: "octet", opts: []option{{"blksize", "512"}}}, false},
	{"mail mode refused", rrq(opRRQ, "a", "mail"), request{}, true},
	{"empty filename", rrq(opRRQ, "", "octet"), request{}, true},
	{"no mode", rrq(opRRQ, "a"), request{}, true},
	{"not terminated", append(rrq(opRRQ, "a"), "octet"...), request{}, true},
	{"ack is not a request", []byte{0, 4, 0, 1}, request{}, true},
	{"short", []byte{0}, request{}, true},
	{"empty", nil, request{}, true},
}

func TestParseRequest(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.pkt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseRequest error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(request{}, option{})); diff != "" {
				t.Errorf("parseRequest (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	lim := limits{maxBlockSize: 1468, maxWindowSize: 64}
	tests := []struct {
		name string
		opts []option
		want params
	}{
		{"none", nil, params{blockSize: 512, windowSize: 1}},
		{"blksize", []option{{"blksize", "1024"}}, params{blockSize: 1024, windowSize: 1, acked: []string{"blksize"}}},
		{"blksize clamped to path", []option{{"blksize", "9000"}}, params{blockSize: 1468, windowSize: 1, acked: []string{"blksize"}}},
		{"blksize minimum", []option{{"blksize", "8"}}, params{blockSize: 8, windowSize: 1, acked: []string{"blksize"}}},
		{"blksize too small ignored", []option{{"blksize", "7"}}, params{blockSize: 512, windowSize: 1}},
		{"blksize above RFC max ignored", []option{{"blksize", "65465"}}, params{blockSize: 512, windowSize: 1}},
		{"blksize garbage ignored", []option{{"blksize", "12x"}}, params{blockSize: 512, windowSize: 1}},
		{"tsize", []option{{"tsize", "0"}}, params{blockSize: 512, windowSize: 1, tsize: true, acked: []string{"tsize"}}},
		{"tsize negative ignored", []option{{"tsize", "-1"}}, params{blockSize: 512, windowSize: 1}},
		{"timeout", []option{{"timeout", "3"}}, params{blockSize: 512, windowSize: 1, timeoutSec: 3, acked: []string{"timeout"}}},
		{"timeout zero ignored", []option{{"timeout", "0"}}, params{blockSize: 512, windowSize: 1}},
		{"timeout 256 ignored", []option{{"timeout", "256"}}, params{blockSize: 512, windowSize: 1}},
		{"windowsize", []option{{"windowsize", "16"}}, params{blockSize: 512, windowSize: 16, acked: []string{"windowsize"}}},
		{"windowsize capped", []option{{"windowsize", "1000"}}, params{blockSize: 512, windowSize: 64, acked: []string{"windowsize"}}},
		{"windowsize zero ignored", []option{{"windowsize", "0"}}, params{blockSize: 512, windowSize: 1}},
		{"unknown ignored", []option{{"multicast", ""}, {"blksize", "1000"}}, params{blockSize: 1000, windowSize: 1, acked: []string{"blksize"}}},
		{"first of duplicates wins", []option{{"blksize", "1000"}, {"blksize", "600"}}, params{blockSize: 1000, windowSize: 1, acked: []string{"blksize"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := negotiate(tt.opts, lim)
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(params{})); diff != "" {
				t.Errorf("negotiate (-got +want):\n%s", diff)
			}
		})
	}
}

func TestAppendOACK(t *testing.T) {
	p := params{blockSize: 1468, windowSize: 8, timeoutSec: 2, tsize: true, acked: []string{"tsize", "blksize", "windowsize", "timeout"}}
	got := appendOACK(nil, p, 12345)
	want := rrq(opOACK, "tsize", "12345", "blksize", "1468", "windowsize", "8", "timeout", "2")
	if !bytes.Equal(got, want) {
		t.Errorf("appendOACK = %q, want %q", got, want)
	}
}

func TestToNetascii(t *testing.T) {
	if got, want := string(toNetascii([]byte("a\nb\rc\r\n"))), "a\r\nb\r\x00c\r\x00\r\n"; got != want {
		t.Errorf("toNetascii = %q, want %q", got, want)
	}
}

// FuzzParseRequest checks that no packet panics the parser or negotiation
// and that an accepted request yields a sane transfer: a block size the
// limits allow and an OACK naming only options the server understands.
func FuzzParseRequest(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.pkt)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		req, err := parseRequest(pkt)
		if err != nil {
			return
		}
		if req.filename == "" || (req.mode != "octet" && req.mode != "netascii") {
			t.Fatalf("accepted %q as %+v", pkt, req)
		}
		lim := limits{maxBlockSize: 1468, maxWindowSize: 64}
		p := negotiate(req.opts, lim)
		if p.blockSize < minBlockSize || p.blockSize > lim.maxBlockSize || p.windowSize < 1 || p.windowSize > lim.maxWindowSize || p.timeoutSec < 0 || p.timeoutSec > 255 {
			t.Fatalf("negotiate(%q) = %+v", pkt, p)
		}
		oack := appendOACK(nil, p, 42)
		fields := strings.Split(string(oack[2:]), "\x00")
		for i := 0; i+1 < len(fields); i += 2 {
			switch fields[i] {
			case "blksize", "tsize", "timeout", "windowsize":
			default:
				t.Fatalf("OACK names option %q", fields[i])
			}
		}
	})
}
