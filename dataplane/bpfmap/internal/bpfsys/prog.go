package bpfsys

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Stack layout of the egress program (offsets from the frame pointer).
const (
	stkLevelKey = -4  // u32 key 0 for the level map
	stkVersion  = -8  // first byte of the IP header
	stkKey4     = -16 // IPv4 LPM key: u32 prefixlen, then 4 address bytes at -12
	stkKey6     = -40 // IPv6 LPM key: u32 prefixlen, then 16 address bytes at -36
)

// ipv6Loopback3 is the last 32-bit word of ::1 as the program loads it from
// the packet (network order bytes read as a host order word).
var ipv6Loopback3 = int32(binary.NativeEndian.Uint32([]byte{0, 0, 0, 1}))

// egressInstructions is the cgroup/skb egress enforcement program. Verdict 1
// passes, 0 drops. At any level but 1 it passes everything. At level 1 it
// passes IPv4 to 127.0.0.0/8, IPv6 to ::1, and destinations matching the
// allowlist LPM tries; it drops everything else, including packets it
// cannot parse (fail closed).
//
// Written with the asm package so no compiler or committed object is needed.
// cgroup skb programs see the packet from its network header, so offset 0 is
// the IP header.
func egressInstructions(level, allow4, allow6 *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = skb

		// r0 = level_map[0]; no entry or level != 1 passes.
		asm.StoreImm(asm.RFP, stkLevelKey, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkLevelKey),
		asm.LoadMapPtr(asm.R1, level.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R0, asm.R0, 0, asm.Word),
		asm.JNE.Imm(asm.R0, 1, "pass"),

		// Level 1: read the IP version nibble.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkVersion),
		asm.Mov.Imm(asm.R4, 1),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R0, asm.RFP, stkVersion, asm.Byte),
		asm.RSh.Imm(asm.R0, 4),
		asm.JEq.Imm(asm.R0, 6, "v6"),
		asm.JNE.Imm(asm.R0, 4, "drop"),

		// IPv4: key = {32, daddr}; daddr is at offset 16.
		asm.StoreImm(asm.RFP, stkKey4, 32, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 16),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkKey4+4),
		asm.Mov.Imm(asm.R4, 4),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R0, asm.RFP, stkKey4+4, asm.Byte),
		asm.JEq.Imm(asm.R0, 127, "pass"), // 127.0.0.0/8
		asm.LoadMapPtr(asm.R1, allow4.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.Ja.Label("drop"),

		// IPv6: key = {128, daddr}; daddr is at offset 24.
		asm.StoreImm(asm.RFP, stkKey6, 128, asm.Word).WithSymbol("v6"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 24),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkKey6+4),
		asm.Mov.Imm(asm.R4, 16),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		// ::1 is three zero words and then 0x00000001 in network order.
		asm.LoadMem(asm.R1, asm.RFP, stkKey6+4, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "lookup6"),
		asm.LoadMem(asm.R1, asm.RFP, stkKey6+8, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "lookup6"),
		asm.LoadMem(asm.R1, asm.RFP, stkKey6+12, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "lookup6"),
		asm.LoadMem(asm.R1, asm.RFP, stkKey6+16, asm.Word),
		asm.JEq.Imm(asm.R1, ipv6Loopback3, "pass"),
		asm.LoadMapPtr(asm.R1, allow6.FD()).WithSymbol("lookup6"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey6),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("pass"),
		asm.Return(),
	}
}

// program loads the egress program once per Maps, bound to these maps.
func (m *Maps) program() (*ebpf.Program, error) {
	if m.prog != nil {
		return m.prog, nil
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "kedge_egress",
		Type:         ebpf.CGroupSKB,
		AttachType:   ebpf.AttachCGroupInetEgress,
		Instructions: egressInstructions(m.level, m.allow4, m.allow6),
		// The program calls no GPL-only helper.
		License: "Proprietary",
	})
	if err != nil {
		return nil, fmt.Errorf("load egress program: %w", err)
	}
	m.prog = p
	return p, nil
}
