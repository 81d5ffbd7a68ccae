/* sbuf.c - growable text buffer (SQL built for capture triggers and the engine). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sbuf_addn(struct sbuf *b, const char *s, size_t n)
{
	char *np;
	size_t ncap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
sbuf_add(struct sbuf *b, const char *s)
{
	sbuf_addn(b, s, strlen(s));
}

void
sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = 1;
		return;
	}
	sbuf_addn(b, tmp, (size_t)n);
}

void
sbuf_ident(struct sbuf *b, const char *id)
{
	const char *q;

	sbuf_add(b, "\"");
	while ((q = strchr(id, '"')) != NULL) {
		sbuf_addn(b, id, (size_t)(q - id) + 1);
		sbuf_add(b, "\"");
		id = q + 1;
	}
	sbuf_add(b, id);
	sbuf_add(b, "\"");
}
