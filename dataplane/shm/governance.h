/*
 * governance.h - layout of the Kedge governance segment, for the VPP
 * governance plugin (reader side).
 *
 * Kedge (dataplane/shm in github.com/guildhouse-co/kedge) is the only
 * writer. It creates the file (default /dev/shm/kedge-governance) fully
 * initialised and then gives it its name, so a reader that can open the file
 * sees a complete header. The reader maps KEDGE_GOV_SEGMENT_SIZE bytes with
 * PROT_READ and MAP_SHARED, checks the header with kedge_gov_header_ok(),
 * and polls with kedge_gov_read().
 *
 * Layout version 1. All fields are in host byte order.
 *
 *   offset size field
 *        0    4 magic           KEDGE_GOV_MAGIC
 *        4    4 layout_version  KEDGE_GOV_LAYOUT_VERSION; refuse anything else
 *        8    4 header_size     KEDGE_GOV_HEADER_SIZE (offset of the state)
 *       12    4 segment_size    KEDGE_GOV_SEGMENT_SIZE (size of the file)
 *       16    4 writer_pid      last writer that opened the segment (informational)
 *       20   44 reserved
 *       64    8 sequence        seqlock counter, odd while a write is in progress
 *       72    4 posture_level   1 (lockdown) .. 5 (normal); 0 = not yet published
 *       76    4 flags           opaque flags set by the Kedge engine
 *       80    8 timestamp_ns    CLOCK_REALTIME of the last write, in ns
 *       88    8 check           kedge_gov_check(sequence, level, flags, ts)
 *       96 4000 reserved
 *
 * Seqlock protocol. Writer: sequence += 1 (now odd); store posture_level,
 * flags, timestamp_ns, check; sequence += 1 (now even). Every store is
 * atomic and at least release ordered. Reader: see kedge_gov_read(): load
 * sequence (acquire), retry while odd, load the fields, fence, load sequence
 * again and retry if it changed. A matching check word proves the snapshot
 * is not torn.
 */
#ifndef KEDGE_GOVERNANCE_H
#define KEDGE_GOVERNANCE_H

#include <stddef.h>
#include <stdint.h>

#define KEDGE_GOV_MAGIC          0x4B474F56u /* "KGOV" */
#define KEDGE_GOV_LAYOUT_VERSION 1u
#define KEDGE_GOV_HEADER_SIZE    64u
#define KEDGE_GOV_SEGMENT_SIZE   4096u
#define KEDGE_GOV_LEVEL_UNSET    0u
#define KEDGE_GOV_CHECK_MUL      0x9E3779B97F4A7C15ull
#define KEDGE_GOV_DEFAULT_PATH   "/dev/shm/kedge-governance"

struct kedge_gov_header {
	uint32_t magic;
	uint32_t layout_version;
	uint32_t header_size;
	uint32_t segment_size;
	uint32_t writer_pid;
	uint8_t  reserved[44];
};

struct kedge_gov_state {
	uint64_t sequence;
	uint32_t posture_level;
	uint32_t flags;
	uint64_t timestamp_ns;
	uint64_t check;
};

struct kedge_gov_segment {
	struct kedge_gov_header header;
	struct kedge_gov_state  state;
	uint8_t reserved[KEDGE_GOV_SEGMENT_SIZE - KEDGE_GOV_HEADER_SIZE - sizeof(struct kedge_gov_state)];
};

_Static_assert(offsetof(struct kedge_gov_segment, header.magic) == 0, "magic");
_Static_assert(offsetof(struct kedge_gov_segment, header.layout_version) == 4, "layout_version");
_Static_assert(offsetof(struct kedge_gov_segment, header.header_size) == 8, "header_size");
_Static_assert(offsetof(struct kedge_gov_segment, header.segment_size) == 12, "segment_size");
_Static_assert(offsetof(struct kedge_gov_segment, header.writer_pid) == 16, "writer_pid");
_Static_assert(sizeof(struct kedge_gov_header) == KEDGE_GOV_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct kedge_gov_segment, state.sequence) == 64, "sequence");
_Static_assert(offsetof(struct kedge_gov_segment, state.posture_level) == 72, "posture_level");
_Static_assert(offsetof(struct kedge_gov_segment, state.flags) == 76, "flags");
_Static_assert(offsetof(struct kedge_gov_segment, state.timestamp_ns) == 80, "timestamp_ns");
_Static_assert(offsetof(struct kedge_gov_segment, state.check) == 88, "check");
_Static_assert(sizeof(struct kedge_gov_state) == 32, "state size");
_Static_assert(sizeof(struct kedge_gov_segment) == KEDGE_GOV_SEGMENT_SIZE, "segment size");

/* One consistent snapshot of the state. */
struct kedge_gov_snapshot {
	uint64_t sequence;
	uint32_t posture_level;
	uint32_t flags;
	uint64_t timestamp_ns;
};

static inline uint64_t kedge_gov_check(uint64_t seq, uint32_t level,
				       uint32_t flags, uint64_t ts)
{
	return ((seq ^ ts) * KEDGE_GOV_CHECK_MUL) ^
	       (((uint64_t)level << 32) | (uint64_t)flags);
}

/* Returns 1 if the mapped file of file_size bytes has a header this reader
 * understands, 0 otherwise (do not read the state then). */
static inline int kedge_gov_header_ok(const struct kedge_gov_segment *seg,
				      uint64_t file_size)
{
	return file_size == KEDGE_GOV_SEGMENT_SIZE &&
	       seg->header.magic == KEDGE_GOV_MAGIC &&
	       seg->header.layout_version == KEDGE_GOV_LAYOUT_VERSION &&
	       seg->header.header_size == KEDGE_GOV_HEADER_SIZE &&
	       seg->header.segment_size == KEDGE_GOV_SEGMENT_SIZE;
}

/* kedge_gov_read takes a consistent snapshot. It returns 0 on success,
 * 1 if no write finished within max_spins attempts (try again on the next
 * poll cycle), and -1 if the check word does not match (not a Kedge writer:
 * ignore the segment). */
static inline int kedge_gov_read(const struct kedge_gov_segment *seg,
				 struct kedge_gov_snapshot *out,
				 unsigned max_spins)
{
	const struct kedge_gov_state *st = &seg->state;
	for (unsigned i = 0; i < max_spins; i++) {
		uint64_t s1 = __atomic_load_n(&st->sequence, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		uint32_t level = __atomic_load_n(&st->posture_level, __ATOMIC_RELAXED);
		uint32_t flags = __atomic_load_n(&st->flags, __ATOMIC_RELAXED);
		uint64_t ts = __atomic_load_n(&st->timestamp_ns, __ATOMIC_RELAXED);
		uint64_t check = __atomic_load_n(&st->check, __ATOMIC_RELAXED);
		/* Order the field loads before the second sequence load. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&st->sequence, __ATOMIC_RELAXED) != s1)
			continue;
		if (s1 == 0 && level == 0 && flags == 0 && ts == 0 && check == 0) {
			out->sequence = 0; /* fresh segment, nothing published */
			out->posture_level = KEDGE_GOV_LEVEL_UNSET;
			out->flags = 0;
			out->timestamp_ns = 0;
			return 0;
		}
		if (check != kedge_gov_check(s1, level, flags, ts))
			return -1;
		out->sequence = s1;
		out->posture_level = level;
		out->flags = flags;
		out->timestamp_ns = ts;
		return 0;
	}
	return 1;
}

#endif /* KEDGE_GOVERNANCE_H */
