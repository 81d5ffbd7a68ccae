/* sbuf.h - a growable text buffer for building SQL, with sticky allocation failure. */
#ifndef MESHSYNC_SBUF_H
#define MESHSYNC_SBUF_H

#include <stddef.h>

/*
 * Start as `struct sbuf b = { 0 };`.  After any failed append `oom` stays
 * set and further appends do nothing, so callers check once at the end.
 * The caller frees b.p.
 */
struct sbuf {
	char	*p;
	size_t	 len, cap;
	int	 oom;
};

void	 sbuf_addn(struct sbuf *b, const char *s, size_t n);
void	 sbuf_add(struct sbuf *b, const char *s);
/* Formatted append of at most 511 bytes (longer sets oom). */
void	 sbuf_addf(struct sbuf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Append id as a double-quoted SQL identifier, doubling inner quotes. */
void	 sbuf_ident(struct sbuf *b, const char *id);

#endif
