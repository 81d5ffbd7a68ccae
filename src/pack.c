/* pack.c - a compact binary encoding for the lists the sync engine keeps in one blob. */
#include "pack.h"

#include <stdlib.h>
#include <string.h>

static int
grow(struct pack_w *w, size_t n)
{
	unsigned char *np;
	size_t cap;

	if (w->oom)
		return -1;
	if (n <= w->cap - w->len)
		return 0;
	cap = w->cap ? w->cap : 64;
	while (cap - w->len < n) {
		if (cap > SIZE_MAX / 2) {
			w->oom = 1;
			return -1;
		}
		cap *= 2;
	}
	if ((np = realloc(w->p, cap)) == NULL) {
		w->oom = 1;
		return -1;
	}
	w->p = np;
	w->cap = cap;
	return 0;
}

void
pack_bytes(struct pack_w *w, const void *p, size_t n)
{
	if (n == 0 || grow(w, n) == -1)
		return;
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

void
pack_u64(struct pack_w *w, uint64_t v)
{
	if (grow(w, 10) == -1)
		return;
	do {
		w->p[w->len] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			w->p[w->len] |= 0x80;
		w->len++;
	} while (v != 0);
}

void
pack_i64(struct pack_w *w, int64_t v)
{
	/* Zigzag, so small negative numbers stay short. */
	pack_u64(w, ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0));
}

void
pack_f64(struct pack_w *w, double v)
{
	pack_bytes(w, &v, sizeof(v));
}

void
pack_str(struct pack_w *w, const void *p, size_t n)
{
	pack_u64(w, n);
	pack_bytes(w, p, n);
}

void
pack_r_init(struct pack_r *r, const void *p, size_t n)
{
	r->p = p;
	r->len = p != NULL ? n : 0;
	r->off = 0;
	r->bad = 0;
}

uint64_t
unpack_u64(struct pack_r *r)
{
	uint64_t v = 0;
	int shift;

	for (shift = 0; shift < 70 && !r->bad; shift += 7) {
		unsigned char c;

		if (r->off >= r->len)
			break;
		c = r->p[r->off++];
		if (shift == 63 && (c & 0x7e) != 0)
			break;		/* more than 64 bits */
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			return v;
	}
	r->bad = 1;
	return 0;
}

int64_t
unpack_i64(struct pack_r *r)
{
	uint64_t u = unpack_u64(r);

	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

double
unpack_f64(struct pack_r *r)
{
	double v = 0;

	if (r->bad || r->len - r->off < sizeof(v)) {
		r->bad = 1;
		return 0;
	}
	memcpy(&v, r->p + r->off, sizeof(v));
	r->off += sizeof(v);
	return v;
}

const char *
unpack_str(struct pack_r *r, size_t *n)
{
	uint64_t len = unpack_u64(r);
	const char *s;

	*n = 0;
	if (r->bad || len > r->len - r->off) {
		r->bad = 1;
		return "";
	}
	s = (const char *)r->p + r->off;
	r->off += (size_t)len;
	*n = (size_t)len;
	return s;
}

int
unpack_done(const struct pack_r *r)
{
	return !r->bad && r->off == r->len;
}

void
pack_node(struct pack_w *w, const char *node, char reg[PACK_NODE_MAX + 1])
{
	size_t n = strlen(node);

	if (n == 0) {
		pack_u64(w, 0);
		return;
	}
	if (strcmp(node, reg) == 0) {
		pack_u64(w, 1);
		return;
	}
	if (n > PACK_NODE_MAX) {
		w->oom = 1;	/* callers check ids first: a bug */
		return;
	}
	pack_u64(w, 2);
	pack_str(w, node, n);
	memcpy(reg, node, n + 1);
}

void
unpack_node(struct pack_r *r, char out[PACK_NODE_MAX + 1],
    char reg[PACK_NODE_MAX + 1])
{
	const char *s;
	size_t n;

	out[0] = '\0';
	switch (unpack_u64(r)) {
	case 0:
		return;
	case 1:
		memcpy(out, reg, strlen(reg) + 1);
		return;
	case 2:
		s = unpack_str(r, &n);
		if (n == 0 || n > PACK_NODE_MAX || memchr(s, '\0', n)) {
			r->bad = 1;
			return;
		}
		memcpy(out, s, n);
		out[n] = '\0';
		memcpy(reg, out, n + 1);
		return;
	default:
		r->bad = 1;
	}
}
