package dhcp

import (
	"errors"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors:
//
//	ironcast_dhcp_received_total{type}   requests by message type
//	ironcast_dhcp_sent_total{type}       offers, acks and naks
//	ironcast_dhcp_dropped_total{reason}  requests dropped without a reply
//	ironcast_dhcp_handler_seconds        time from dequeue to reply sent
//
// Releases and declines are received_total{type="release"|"decline"}.
type metrics struct {
	receivedVec, sentVec, droppedVec *prometheus.CounterVec
	latency                          prometheus.Histogram
	// recv and sent hold the counters of each message type and drops
	// those of each reason, resolved once: WithLabelValues hashes and
	// locks on every call, which showed in the per-packet profile.
	recv, sentBy [256]prometheus.Counter
	drops        map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		receivedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironcast", Subsystem: "dhcp", Name: "received_total",
			Help: "DHCP requests received, by message type.",
		}, []string{"type"}),
		sentVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironcast", Subsystem: "dhcp", Name: "sent_total",
			Help: "DHCP replies sent, by message type.",
		}, []string{"type"}),
		droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironcast", Subsystem: "dhcp", Name: "dropped_total",
			Help: "DHCP requests dropped without a reply, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ironcast", Subsystem: "dhcp", Name: "handler_seconds",
			Help:    "Time to handle one DHCP request, store write included.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12),
		}),
	}
	for t := range 256 {
		m.recv[t] = m.receivedVec.WithLabelValues(typeLabel(dhcpv4.MessageType(t)))
		m.sentBy[t] = m.sentVec.WithLabelValues(typeLabel(dhcpv4.MessageType(t)))
	}
	m.drops = map[string]prometheus.Counter{}
	for _, r := range []string{dropMalformed, dropOversized, dropWrongOp, dropWrongType, dropContradictory, dropNoSubnet,
		dropNotReserved, dropExhausted, dropNotOurs, dropNotPXE, dropLeaseError, dropQueueFull, dropPanic, dropSendError, dropInUse} {
		m.drops[r] = m.droppedVec.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.receivedVec, m.sentVec, m.droppedVec, m.latency} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

func typeLabel(t dhcpv4.MessageType) string {
	switch t {
	case dhcpv4.MessageTypeDiscover:
		return "discover"
	case dhcpv4.MessageTypeOffer:
		return "offer"
	case dhcpv4.MessageTypeRequest:
		return "request"
	case dhcpv4.MessageTypeDecline:
		return "decline"
	case dhcpv4.MessageTypeAck:
		return "ack"
	case dhcpv4.MessageTypeNak:
		return "nak"
	case dhcpv4.MessageTypeRelease:
		return "release"
	case dhcpv4.MessageTypeInform:
		return "inform"
	}
	return "other"
}

func (m *metrics) received(t dhcpv4.MessageType) { m.recv[t].Inc() }
func (m *metrics) sent(t dhcpv4.MessageType)     { m.sentBy[t].Inc() }

func (m *metrics) dropped(reason string) {
	if c, ok := m.drops[reason]; ok {
		c.Inc()
		return
	}
	m.droppedVec.WithLabelValues(reason).Inc()
}
