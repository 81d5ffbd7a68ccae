/* 3006-pack.c - the blob encoding of the change log and the shadow: round trips at the limits, and damaged blobs read as damaged, never past their end. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pack.h"
#include "tap.h"

/* Read a blob given as bytes. */
static void
reader(struct pack_r *r, const char *bytes, size_t n)
{
	pack_r_init(r, bytes, n);
}

static void
test_round_trip(void)
{
	static const uint64_t u[] = { 0, 1, 127, 128, 300, 16383, 16384,
	    UINT64_C(1) << 63, UINT64_MAX };
	static const int64_t i[] = { 0, 1, -1, 63, -64, 64, INT64_MAX,
	    INT64_MIN };
	char nreg[PACK_NODE_MAX + 1] = "", rreg[PACK_NODE_MAX + 1] = "";
	char node[PACK_NODE_MAX + 1], id64[PACK_NODE_MAX + 1];
	struct pack_w w = { 0 };
	struct pack_r r;
	const char *s;
	size_t k, n;
	int ok = 1;

	memset(id64, 'n', PACK_NODE_MAX);
	id64[PACK_NODE_MAX] = '\0';
	for (k = 0; k < sizeof(u) / sizeof(u[0]); k++)
		pack_u64(&w, u[k]);
	for (k = 0; k < sizeof(i) / sizeof(i[0]); k++)
		pack_i64(&w, i[k]);
	pack_f64(&w, -0.0);
	pack_f64(&w, INFINITY);
	pack_str(&w, "", 0);
	pack_str(&w, "a\0b", 3);
	pack_node(&w, "", nreg);
	pack_node(&w, "node-a", nreg);
	pack_node(&w, "node-a", nreg);
	pack_node(&w, id64, nreg);
	tap_ok(!w.oom, "written without a failure (%zu bytes)", w.len);
	{
		struct pack_w v = { 0 };

		pack_u64(&v, 127);
		pack_i64(&v, -64);
		tap_is_int((long long)v.len, 2, "127 and -64 take a byte each");
		pack_u64(&v, 128);
		pack_u64(&v, UINT64_MAX);
		tap_is_int((long long)v.len, 2 + 2 + 10, "128 two, the "
		    "largest ten");
		free(v.p);
	}

	pack_r_init(&r, w.p, w.len);
	for (k = 0; k < sizeof(u) / sizeof(u[0]); k++)
		ok &= unpack_u64(&r) == u[k];
	tap_ok(ok, "unsigned varints round-trip, 0 to UINT64_MAX");
	for (ok = 1, k = 0; k < sizeof(i) / sizeof(i[0]); k++)
		ok &= unpack_i64(&r) == i[k];
	tap_ok(ok, "zigzag integers round-trip, INT64_MIN to INT64_MAX");
	tap_ok(signbit(unpack_f64(&r)) && isinf(unpack_f64(&r)),
	    "doubles round-trip bit for bit (-0, inf)");
	s = unpack_str(&r, &n);
	tap_is_int((long long)n, 0, "an empty string");
	s = unpack_str(&r, &n);
	tap_ok(n == 3 && memcmp(s, "a\0b", 3) == 0, "a string with a NUL "
	    "inside keeps its length");
	unpack_node(&r, node, rreg);
	tap_is_str(node, "", "node \"\"");
	unpack_node(&r, node, rreg);
	tap_is_str(node, "node-a", "a node id");
	unpack_node(&r, node, rreg);
	tap_is_str(node, "node-a", "the same id again, as a reference");
	unpack_node(&r, node, rreg);
	tap_is_str(node, id64, "a 64-byte id");
	tap_ok(unpack_done(&r), "every byte read, nothing failed");
	free(w.p);
}

static void
test_damaged(void)
{
	char node[PACK_NODE_MAX + 1], reg[PACK_NODE_MAX + 1] = "";
	struct pack_r r;
	size_t n;

	reader(&r, "\x80\x80", 2);
	tap_ok(unpack_u64(&r) == 0 && r.bad, "a varint cut short is damage");
	reader(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
	tap_ok(unpack_u64(&r) == UINT64_MAX && !r.bad, "the 10-byte maximum "
	    "reads");
	reader(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
	unpack_u64(&r);
	tap_ok(r.bad, "a 10th byte with more than one bit is damage");
	reader(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 11);
	unpack_u64(&r);
	tap_ok(r.bad, "an 11-byte varint is damage");
	reader(&r, "\x05" "abc", 4);
	unpack_str(&r, &n);
	tap_ok(r.bad && n == 0, "a string longer than the blob is damage, "
	    "nothing handed out");
	reader(&r, "\x7f", 1);
	unpack_f64(&r);
	tap_ok(r.bad, "a double cut short is damage");
	reader(&r, "\x01", 1);
	unpack_u64(&r);
	unpack_u64(&r);
	tap_ok(r.bad && unpack_u64(&r) == 0, "reading past the end is "
	    "damage, and stays so");
	reader(&r, "\x03", 1);
	unpack_node(&r, node, reg);
	tap_ok(r.bad && node[0] == '\0', "an unknown node tag is damage");
	reader(&r, "\x02\x03" "a\0b", 5);
	unpack_node(&r, node, reg);
	tap_ok(r.bad, "a node id with a NUL inside is damage");
	reader(&r, "\x02\x00", 2);
	unpack_node(&r, node, reg);
	tap_ok(r.bad, "an empty explicit node id is damage");
	reader(&r, "\x01\x00", 2);
	unpack_u64(&r);
	tap_ok(!unpack_done(&r), "bytes left over are not a whole blob");
	reader(&r, NULL, 0);
	unpack_u64(&r);
	tap_ok(r.bad, "an empty blob holds nothing");
}

int
main(void)
{
	test_round_trip();
	test_damaged();
	return tap_done();
}
