package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	errNotDefined      uint16 = 0
	errFileNotFound    uint16 = 1
	errAccessViolation uint16 = 2
	errIllegalOp       uint16 = 4
	errOptionRefused   uint16 = 8
)

// Option limits. blksize: RFC 2348 allows 8..65464. timeout: RFC 2349
// allows 1..255 seconds. windowsize: RFC 7440 allows 1..65535; the server
// caps it (Config.MaxWindowSize).
const (
	minBlockSize     = 8
	maxBlockSize     = 65464
	defaultBlockSize = 512
	// fallbackBlockSize fits an Ethernet MTU of 1500 minus IPv4 (20), UDP (8)
	// and TFTP (4) headers.
	fallbackBlockSize = 1468
	maxTimeoutSecs    = 255
)

// request is a parsed RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string // lower-cased: "octet" or "netascii"
	// opts holds the options in the order sent, names lower-cased. RFC
	// 2347 names are case-insensitive; values are kept as sent.
	opts []option
}

type option struct{ name, value string }

var errMalformed = errors.New("malformed request")

// parseRequest parses an RRQ or WRQ packet: opcode, filename NUL, mode NUL,
// then name NUL value NUL pairs (RFC 2347). A trailing option name with no
// value is ignored, as some clients pad requests.
func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) < 2 {
		return r, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	r.op = binary.BigEndian.Uint16(b)
	if r.op != opRRQ && r.op != opWRQ {
		return r, fmt.Errorf("%w: opcode %d", errMalformed, r.op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed packet ends with NUL, so the last field is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return r, fmt.Errorf("%w: fields not NUL-terminated", errMalformed)
	}
	fields = fields[:len(fields)-1]
	if len(fields[0]) == 0 {
		return r, fmt.Errorf("%w: empty filename", errMalformed)
	}
	r.filename = string(fields[0])
	r.mode = strings.ToLower(string(fields[1]))
	if r.mode != "octet" && r.mode != "netascii" {
		return r, fmt.Errorf("%w: mode %q", errMalformed, r.mode)
	}
	for i := 2; i+1 < len(fields); i += 2 {
		r.opts = append(r.opts, option{strings.ToLower(string(fields[i])), string(fields[i+1])})
	}
	return r, nil
}

// limits bound what the server accepts in negotiation.
type limits struct {
	maxBlockSize  int // already clamped to the path MTU
	maxWindowSize int
}

// params are the negotiated transfer parameters.
type params struct {
	blockSize  int
	windowSize int
	timeoutSec int  // 0: the server default
	tsize      bool // the client asked for the transfer size
	// acked lists the options to echo in the OACK, in request order.
	// Empty means no OACK: data starts with block 1.
	acked []string
}

// negotiate applies RFC 2347/2348/2349/7440 to the requested options. Only
// options the server understands and accepts are acknowledged; unknown
// options and invalid values are ignored (the RFC's alternative to
// refusing the whole request). Values above the server's limits are
// lowered, which RFC 2348 and 7440 allow.
func negotiate(opts []option, lim limits) params {
	p := params{blockSize: defaultBlockSize, windowSize: 1}
	seen := map[string]bool{}
	for _, o := range opts {
		if seen[o.name] {
			continue
		}
		seen[o.name] = true
		switch o.name {
		case "blksize":
			n, err := strconv.Atoi(o.value)
			if err != nil || n < minBlockSize || n > maxBlockSize {
				continue
			}
			p.blockSize = min(n, lim.maxBlockSize)
		case "tsize":
			// The RRQ carries 0; the value is filled in from the file.
			if _, err := strconv.ParseUint(o.value, 10, 63); err != nil {
				continue
			}
			p.tsize = true
		case "timeout":
			n, err := strconv.Atoi(o.value)
			if err != nil || n < 1 || n > maxTimeoutSecs {
				continue
			}
			p.timeoutSec = n
		case "windowsize":
			n, err := strconv.Atoi(o.value)
			if err != nil || n < 1 || n > 65535 {
				continue
			}
			p.windowSize = min(n, lim.maxWindowSize)
		default:
			continue
		}
		p.acked = append(p.acked, o.name)
	}
	return p
}

// appendOACK builds the OACK for p, with tsize as the transfer size.
func appendOACK(b []byte, p params, tsize int64) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	for _, name := range p.acked {
		var v string
		switch name {
		case "blksize":
			v = strconv.Itoa(p.blockSize)
		case "tsize":
			v = strconv.FormatInt(tsize, 10)
		case "timeout":
			v = strconv.Itoa(p.timeoutSec)
		case "windowsize":
			v = strconv.Itoa(p.windowSize)
		}
		b = append(b, name...)
		b = append(b, 0)
		b = append(b, v...)
		b = append(b, 0)
	}
	return b
}

// appendError builds an ERROR packet. Messages are short ASCII.
func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}

// parseAck returns the block number of an ACK, or ok=false for anything
// else. errCode and isErr report an ERROR packet from the client.
func parseAck(b []byte) (block uint16, ok bool, isErr bool) {
	if len(b) < 4 {
		return 0, false, false
	}
	switch binary.BigEndian.Uint16(b) {
	case opACK:
		return binary.BigEndian.Uint16(b[2:]), true, false
	case opERROR:
		return 0, false, true
	}
	return 0, false, false
}

// toNetascii converts LF to CR LF and CR to CR NUL (RFC 764, as RFC 1350
// asks for mode netascii).
func toNetascii(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/16)
	for _, c := range b {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}
