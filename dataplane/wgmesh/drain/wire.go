// Package drain carries Kedge's DRAIN notice: before a posture-driven
// teardown a node tells each affected peer, over the WireGuard tunnel
// itself, that it is going down on purpose. The receiver records the peer as
// posture-down (not failed), and must not reconnect to it until a
// de-escalation clears it.
//
// Authentication is WireGuard's: the listener is bound to the tunnel
// interface (SO_BINDTODEVICE) on the node's tunnel address, so a datagram can
// only arrive decrypted from a peer whose key owns the source address in the
// allowed IPs; the listener maps that source back to the peer's name and
// rejects a notice whose claimed node name differs. Sequence numbers start
// from the sender's clock and only grow, so a replayed notice is ignored.
//
// Wire format, one UDP datagram, big endian:
//
//	"KDRN" | version 1 | type (1 drain, 2 ack) | posture level | seq u64 | name length u8 | node name
//
// The sender repeats a DRAIN to each target until it is acknowledged or the
// context ends; the ACK echoes the sequence.
package drain

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultPort is the UDP port DRAIN listeners use inside the tunnel.
const DefaultPort = 51871

// Message types.
const (
	TypeDrain byte = 1
	TypeAck   byte = 2
)

const (
	magic      = "KDRN"
	version    = 1
	headerSize = 4 + 1 + 1 + 1 + 8 + 1
	maxName    = 255
)

var errMalformed = errors.New("malformed drain message")

// Message is one DRAIN or ACK.
type Message struct {
	Type  byte
	Node  string // sender's node name
	Level uint8  // posture level the sender is moving to
	Seq   uint64
}

// Marshal encodes m.
func (m Message) Marshal() ([]byte, error) {
	if len(m.Node) == 0 || len(m.Node) > maxName {
		return nil, fmt.Errorf("encode drain message: node name length %d not in 1-%d", len(m.Node), maxName)
	}
	b := make([]byte, 0, headerSize+len(m.Node))
	b = append(b, magic...)
	b = append(b, version, m.Type, m.Level)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = append(b, byte(len(m.Node)))
	b = append(b, m.Node...)
	return b, nil
}

// Unmarshal decodes one datagram.
func Unmarshal(b []byte) (Message, error) {
	if len(b) < headerSize || string(b[:4]) != magic || b[4] != version {
		return Message{}, errMalformed
	}
	m := Message{Type: b[5], Level: b[6], Seq: binary.BigEndian.Uint64(b[7:15])}
	n := int(b[15])
	if n == 0 || len(b) != headerSize+n || (m.Type != TypeDrain && m.Type != TypeAck) {
		return Message{}, errMalformed
	}
	m.Node = string(b[headerSize:])
	return m, nil
}
