/* pack.h - a compact binary encoding for the lists the sync engine keeps in one blob. */
#ifndef MESHSYNC_PACK_H
#define MESHSYNC_PACK_H

#include <stddef.h>
#include <stdint.h>

/*
 * The engine keeps a row's shadow and a run of change-log entries as one
 * blob each instead of one table row per column: one B-tree insert per
 * row change rather than one per changed column.  The blob is a sequence
 * of unsigned LEB128 varints, zigzag varints, raw 8-byte doubles and
 * length-prefixed strings; its layout is the caller's.
 *
 * Writer: start as `struct pack_w w = { 0 };`.  A failed allocation sets
 * oom, and later writes do nothing; check once at the end, free w.p.
 * Reader: a failed read (past the end, a varint over 10 bytes, a length
 * past the end) sets bad and returns zeros; check once at the end.  Blobs
 * come from our own database, but a copied or damaged file must not make
 * the engine read out of bounds.
 */
struct pack_w {
	unsigned char	*p;
	size_t		 len, cap;
	int		 oom;
};

struct pack_r {
	const unsigned char	*p;
	size_t			 len, off;
	int			 bad;
};

void		 pack_u64(struct pack_w *w, uint64_t v);
void		 pack_i64(struct pack_w *w, int64_t v);
void		 pack_f64(struct pack_w *w, double v);
void		 pack_bytes(struct pack_w *w, const void *p, size_t n);
/* n bytes of p, prefixed by their length. */
void		 pack_str(struct pack_w *w, const void *p, size_t n);

void		 pack_r_init(struct pack_r *r, const void *p, size_t n);
uint64_t	 unpack_u64(struct pack_r *r);
int64_t		 unpack_i64(struct pack_r *r);
double		 unpack_f64(struct pack_r *r);
/* A length-prefixed string: a pointer into the blob (not NUL-terminated)
 * and its length in *n. */
const char	*unpack_str(struct pack_r *r, size_t *n);
/* 1 when every byte was read and nothing failed. */
int		 unpack_done(const struct pack_r *r);

/*
 * Node ids repeat: most columns of a row share a writer, most entries of
 * a run the same previous writer.  A node field is written as 0 (""), 1
 * (the same as this field's last value) or 2 and the id; reg is the
 * field's last value, kept by the caller between calls (start "").
 */
#define PACK_NODE_MAX	64
void		 pack_node(struct pack_w *w, const char *node,
		    char reg[PACK_NODE_MAX + 1]);
/* Read a node field into out (NUL-terminated). */
void		 unpack_node(struct pack_r *r, char out[PACK_NODE_MAX + 1],
		    char reg[PACK_NODE_MAX + 1]);

#endif
