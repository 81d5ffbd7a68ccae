/* tmpl.c - compile mustache-subset templates to token lists, render them over json-c. */
#include "tmpl.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

/* Templates are HTML fragments; the extension lets editors highlight them. */
#define TMPL_EXT	".html"
/*
 * 15 significant digits is the most that every double carries exactly, so
 * 0.1 prints as "0.1" rather than "0.10000000000000001", and an integral
 * double prints without a fraction ("3").
 */
#define TMPL_DOUBLE_FMT	"%.15g"
/* Longest piece of template text quoted back in an error message. */
#define TMPL_QUOTE_MAX	48

enum tok_kind {
	TOK_TEXT,
	TOK_VAR,
	TOK_RAW,
	TOK_SECTION,
	TOK_INVERTED,
	TOK_CLOSE,
	TOK_PARTIAL,
};

struct tok {
	enum tok_kind	 kind;
	unsigned	 line;
	size_t		 off;	/* TEXT: offset in src; else name offset in names */
	size_t		 len;	/* TEXT: byte count; else name length */
	size_t		 end;	/* SECTION, INVERTED: index of the matching CLOSE */
};

struct tmpl {
	char		 name[TMPL_NAME_MAX + 1];
	char		*src;
	size_t		 srclen;
	char		*names;		/* NUL-terminated tag names, back to back */
	size_t		 nameslen;
	struct tok	*toks;
	size_t		 ntok;
	size_t		 captok;
};

struct tmpl_set {
	char		 dir[UTIL_PATH_MAX];
	/* Pointers, not structs: a partial loaded mid-render must not move
	 * the templates that are being walked further up the call chain. */
	struct tmpl	*cache[TMPL_CACHE_MAX];
	size_t		 ncache;
};

/* The state of one render call. */
struct render {
	struct tmpl_set		*set;
	struct tmpl_buf		*out;
	/* Root context, the layout's content frame, then one per level. */
	struct json_object	*stack[TMPL_DEPTH_MAX + 2];
	size_t			 sp;
	size_t			 work;
	char			*err;
	size_t			 errsz;
};

/* HTML entities for the bytes that can end a text node or an attribute
 * value, quoted or not; NUL becomes U+FFFD as the HTML parser would. */
static const char *const tmpl_esc[256] = {
	['&'] = "&amp;",
	['<'] = "&lt;",
	['>'] = "&gt;",
	['"'] = "&quot;",
	['\''] = "&#39;",
	['`'] = "&#96;",
	['='] = "&#61;",
	['\0'] = "&#65533;",
};

static void	 seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 tmpl_errf(const struct tmpl *, char *, size_t, const char *,
		    ...) __attribute__((format(printf, 4, 5)));
static int	 render_toks(struct render *, const struct tmpl *, size_t,
		    size_t, size_t);

/* An error message that does not fit is still worth its first errsz bytes. */
static void
seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* Error about template t: the message, then which template it is in. */
static void
tmpl_errf(const struct tmpl *t, char *err, size_t errsz, const char *fmt, ...)
{
	char msg[TMPL_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	seterr(err, errsz, "%s in template '%s'", msg, t->name);
}

/* Printable copy of n bytes of template or caller text for a message. */
static char *
quote(char *dst, size_t dstsz, const char *s, size_t n)
{
	char tmp[TMPL_QUOTE_MAX + 1];

	if (n > TMPL_QUOTE_MAX)
		n = TMPL_QUOTE_MAX;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return log_scrub(dst, dstsz, tmp);
}

void
tmpl_buf_init(struct tmpl_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int
tmpl_buf_append(struct tmpl_buf *b, const char *s, size_t n)
{
	size_t need, ncap;
	char *nd;

	/* b->len never exceeds TMPL_OUT_MAX, so this cannot wrap. */
	if (n > TMPL_OUT_MAX - b->len) {
		errno = EFBIG;
		return -1;
	}
	need = b->len + n + 1;
	if (need > b->cap) {
		ncap = b->cap != 0 ? b->cap : 256;
		while (ncap < need)
			ncap *= 2;
		nd = realloc(b->data, ncap);
		if (nd == NULL) {
			errno = ENOMEM;
			return -1;
		}
		b->data = nd;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void
tmpl_buf_free(struct tmpl_buf *b)
{
	free(b->data);
	tmpl_buf_init(b);
}

int
tmpl_name_valid(const char *name)
{
	size_t i, n;

	if (name == NULL)
		return 0;
	n = strnlen(name, TMPL_NAME_MAX + 1);
	if (n == 0 || n > TMPL_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* "." or [A-Za-z0-9_-]+ parts joined by single dots. */
static int
tag_name_valid(const char *s, size_t n)
{
	size_t i, part = 0;

	if (n == 1 && s[0] == '.')
		return 1;
	if (n == 0 || n > TMPL_TAG_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (part == 0)
				return 0;
			part = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
		part++;
	}
	return part > 0;
}

/* tmpl_name_valid for n bytes of template text. */
static int
partial_name_valid(const char *s, size_t n)
{
	char name[TMPL_NAME_MAX + 1];

	if (n > TMPL_NAME_MAX)
		return 0;
	memcpy(name, s, n);
	name[n] = '\0';
	return tmpl_name_valid(name);
}

/* First occurrence of pat in [p, end), or NULL; the text may hold NULs. */
static const char *
find(const char *p, const char *end, const char *pat, size_t patlen)
{
	for (; (size_t)(end - p) >= patlen; p++)
		if (p[0] == pat[0] && memcmp(p, pat, patlen) == 0)
			return p;
	return NULL;
}

static unsigned
count_nl(const char *p, const char *end)
{
	unsigned n = 0;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void
tmpl_free(struct tmpl *t)
{
	if (t == NULL)
		return;
	free(t->src);
	free(t->names);
	free(t->toks);
	free(t);
}

/* Append a token; a name (kind other than TEXT) is copied into t->names.
 * Returns 0, or -1 with "out of memory" in err. */
static int
tok_add(struct tmpl *t, enum tok_kind kind, unsigned line, const char *s,
    size_t n, char *err, size_t errsz)
{
	struct tok *nt = NULL, *k;
	size_t ncap;

	if (t->ntok == t->captok) {
		ncap = t->captok != 0 ? t->captok * 2 : 32;
		if (ncap <= SIZE_MAX / sizeof(*nt))
			nt = realloc(t->toks, ncap * sizeof(*nt));
		if (nt == NULL) {
			tmpl_errf(t, err, errsz, "out of memory");
			return -1;
		}
		t->toks = nt;
		t->captok = ncap;
	}
	k = &t->toks[t->ntok++];
	k->kind = kind;
	k->line = line;
	k->len = n;
	k->end = 0;
	if (kind == TOK_TEXT) {
		k->off = (size_t)(s - t->src);
		return 0;
	}
	/* Every name sits inside a tag at least four bytes longer than it,
	 * so names (with their NULs) never outgrow the source length. */
	assert(t->nameslen + n + 1 <= t->srclen + 1);
	k->off = t->nameslen;
	memcpy(t->names + t->nameslen, s, n);
	t->names[t->nameslen + n] = '\0';
	t->nameslen += n + 1;
	return 0;
}

/*
 * Turn t->src into tokens.  Sections are matched here, once per template,
 * so a malformed template fails whatever data it is rendered with.
 */
static int
tmpl_compile(struct tmpl *t, char *err, size_t errsz)
{
	const char *src = t->src, *end = t->src + t->srclen, *p = src;
	const char *o, *cs, *ce, *te;
	size_t open[TMPL_DEPTH_MAX], nopen = 0, n;
	char q[TMPL_QUOTE_MAX + 1], q2[TMPL_QUOTE_MAX + 1];
	unsigned line = 1, tagline;
	enum tok_kind kind;
	struct tok *top;
	int triple;

	t->names = malloc(t->srclen + 1);
	if (t->names == NULL) {
		tmpl_errf(t, err, errsz, "out of memory");
		goto fail;
	}
	while (p < end) {
		o = find(p, end, "{{", 2);
		if (o == NULL)
			o = end;
		if (o > p && tok_add(t, TOK_TEXT, line, p, (size_t)(o - p),
		    err, errsz) == -1)
			goto fail;
		line += count_nl(p, o);
		if (o == end)
			break;

		tagline = line;
		triple = end - o > 2 && o[2] == '{';
		cs = o + (triple ? 3 : 2);
		ce = find(cs, end, triple ? "}}}" : "}}", triple ? 3 : 2);
		if (ce == NULL) {
			tmpl_errf(t, err, errsz, "unclosed tag at line %u",
			    tagline);
			goto fail;
		}
		te = ce + (triple ? 3 : 2);
		line += count_nl(cs, ce);
		p = te;

		while (cs < ce && is_space(*cs))
			cs++;
		kind = TOK_VAR;
		if (triple)
			kind = TOK_RAW;
		else if (cs < ce) {
			switch (*cs) {
			case '!':
				/* A comment leaves no token at all. */
				continue;
			case '=':
				tmpl_errf(t, err, errsz, "set-delimiter tags are "
				    "not supported at line %u", tagline);
				goto fail;
			case '#':
				kind = TOK_SECTION;
				break;
			case '^':
				kind = TOK_INVERTED;
				break;
			case '/':
				kind = TOK_CLOSE;
				break;
			case '>':
				kind = TOK_PARTIAL;
				break;
			case '&':
				kind = TOK_RAW;
				break;
			default:
				break;
			}
			if (kind != TOK_VAR)
				cs++;
		}
		while (cs < ce && is_space(*cs))
			cs++;
		while (ce > cs && is_space(ce[-1]))
			ce--;
		n = (size_t)(ce - cs);

		if (kind == TOK_PARTIAL) {
			if (!partial_name_valid(cs, n)) {
				tmpl_errf(t, err, errsz, "bad partial name '%s' "
				    "at line %u", quote(q, sizeof(q), cs, n),
				    tagline);
				goto fail;
			}
		} else if (!tag_name_valid(cs, n)) {
			tmpl_errf(t, err, errsz, "bad tag name '%s' at line %u",
			    quote(q, sizeof(q), cs, n), tagline);
			goto fail;
		}

		if (kind == TOK_CLOSE) {
			if (nopen == 0) {
				tmpl_errf(t, err, errsz, "unexpected close '%s' "
				    "at line %u", quote(q, sizeof(q), cs, n),
				    tagline);
				goto fail;
			}
			top = &t->toks[open[nopen - 1]];
			if (top->len != n ||
			    memcmp(t->names + top->off, cs, n) != 0) {
				tmpl_errf(t, err, errsz, "mismatched close '%s' "
				    "at line %u, expected '%s' from line %u",
				    quote(q, sizeof(q), cs, n), tagline,
				    quote(q2, sizeof(q2), t->names + top->off,
				    top->len), top->line);
				goto fail;
			}
			/* Record the close first: tok_add may move t->toks. */
			if (tok_add(t, kind, tagline, cs, n, err, errsz) == -1)
				goto fail;
			t->toks[open[--nopen]].end = t->ntok - 1;
			continue;
		}
		if (kind == TOK_SECTION || kind == TOK_INVERTED) {
			if (nopen == TMPL_DEPTH_MAX) {
				tmpl_errf(t, err, errsz, "sections nested deeper "
				    "than %d at line %u", TMPL_DEPTH_MAX, tagline);
				goto fail;
			}
			open[nopen++] = t->ntok;
		}
		if (tok_add(t, kind, tagline, cs, n, err, errsz) == -1)
			goto fail;
	}
	if (nopen > 0) {
		top = &t->toks[open[nopen - 1]];
		tmpl_errf(t, err, errsz, "unclosed section '%s' at line %u",
		    quote(q, sizeof(q), t->names + top->off, top->len),
		    top->line);
		goto fail;
	}
	return 0;
fail:
	return -1;
}

/* Compile src (ownership passes to the template, freed on error too). */
static struct tmpl *
tmpl_new(const char *name, char *src, size_t srclen, char *err, size_t errsz)
{
	struct tmpl *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		free(src);
		seterr(err, errsz, "out of memory");
		return NULL;
	}
	t->src = src;
	t->srclen = srclen;
	/* Callers pass valid names or a short fixed label; never truncates. */
	util_strlcpy(t->name, name, sizeof(t->name));
	if (tmpl_compile(t, err, errsz) == -1) {
		tmpl_free(t);
		return NULL;
	}
	return t;
}

struct tmpl_set *
tmpl_set_new(const char *dir, char *err, size_t errsz)
{
	struct tmpl_set *set = NULL;
	struct stat st;

	if (dir == NULL || stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		seterr(err, errsz, "template directory is not a directory");
		goto fail;
	}
	/* Checked once here so building DIR/NAME.html can never truncate. */
	if (strlen(dir) + 1 + TMPL_NAME_MAX + sizeof(TMPL_EXT) >
	    UTIL_PATH_MAX) {
		seterr(err, errsz, "template directory path too long");
		goto fail;
	}
	set = calloc(1, sizeof(*set));
	if (set == NULL) {
		seterr(err, errsz, "out of memory");
		goto fail;
	}
	util_strlcpy(set->dir, dir, sizeof(set->dir));
	return set;
fail:
	free(set);
	return NULL;
}

void
tmpl_set_free(struct tmpl_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->ncache; i++)
		tmpl_free(set->cache[i]);
	free(set);
}

/*
 * The compiled template `name` ("template" or "partial" in messages), from
 * the cache or loaded and cached now.  The set keeps ownership.
 */
static struct tmpl *
set_get(struct tmpl_set *set, const char *name, const char *what, char *err,
    size_t errsz)
{
	char path[UTIL_PATH_MAX], q[TMPL_QUOTE_MAX + 1];
	struct tmpl *t = NULL;
	char *src = NULL;
	size_t i, len;

	/* The name check is what keeps a name from leaving the directory. */
	if (!tmpl_name_valid(name)) {
		seterr(err, errsz, "bad %s name '%s'", what,
		    name == NULL ? "(null)" :
		    quote(q, sizeof(q), name, strnlen(name, TMPL_QUOTE_MAX)));
		goto fail;
	}
	if (set == NULL) {
		seterr(err, errsz, "unknown %s '%s' (no template set)", what,
		    name);
		goto fail;
	}
	for (i = 0; i < set->ncache; i++)
		if (strcmp(set->cache[i]->name, name) == 0)
			return set->cache[i];
	if (set->ncache == TMPL_CACHE_MAX) {
		seterr(err, errsz, "template cache full loading %s '%s'", what,
		    name);
		goto fail;
	}
	if (util_fmt(path, sizeof(path), "%s/%s%s", set->dir, name,
	    TMPL_EXT) == -1) {
		seterr(err, errsz, "path too long for %s '%s'", what, name);
		goto fail;
	}
	if (util_read_file(path, TMPL_FILE_MAX, &src, &len) == -1) {
		if (errno == ENOENT)
			seterr(err, errsz, "unknown %s '%s'", what, name);
		else if (errno == EFBIG)
			seterr(err, errsz, "%s '%s' is larger than %d bytes",
			    what, name, TMPL_FILE_MAX);
		else
			seterr(err, errsz, "cannot read %s '%s': %s", what, name,
			    strerror(errno));
		goto fail;
	}
	t = tmpl_new(name, src, len, err, errsz);
	if (t == NULL)
		goto fail;
	set->cache[set->ncache++] = t;
	return t;
fail:
	return NULL;
}

/* Append to the output, naming the limit when that is what failed. */
static int
emit(struct render *r, const char *s, size_t n)
{
	if (tmpl_buf_append(r->out, s, n) == 0)
		return 0;
	if (errno == EFBIG)
		seterr(r->err, r->errsz, "output larger than %d bytes",
		    TMPL_OUT_MAX);
	else
		seterr(r->err, r->errsz, "out of memory");
	return -1;
}

static int
emit_escaped(struct render *r, const char *s, size_t n)
{
	const char *ent;
	size_t i, run = 0;

	for (i = 0; i < n; i++) {
		ent = tmpl_esc[(unsigned char)s[i]];
		if (ent == NULL)
			continue;
		if (emit(r, s + run, i - run) == -1 ||
		    emit(r, ent, strlen(ent)) == -1)
			return -1;
		run = i + 1;
	}
	return emit(r, s + run, n - run);
}

/*
 * Print a value.  Objects and arrays print nothing: in a variable they are a
 * template bug, and dumping them could show fields a page never meant to.
 */
static int
emit_value(struct render *r, struct json_object *v, int escape)
{
	char num[64];	/* holds any int64, uint64 or %.15g double */
	const char *s;
	int64_t i;

	switch (json_object_get_type(v)) {
	case json_type_boolean:
		s = json_object_get_boolean(v) ? "true" : "false";
		return emit(r, s, strlen(s));
	case json_type_int:
		/* json-c keeps big unsigned values apart and saturates
		 * get_int64 for them; only then ask for the uint64. */
		i = json_object_get_int64(v);
		if (i == INT64_MAX)
			util_fmt(num, sizeof(num), "%" PRIu64,
			    json_object_get_uint64(v));
		else
			util_fmt(num, sizeof(num), "%" PRId64, i);
		return emit(r, num, strlen(num));
	case json_type_double:
		util_fmt(num, sizeof(num), TMPL_DOUBLE_FMT,
		    json_object_get_double(v));
		return emit(r, num, strlen(num));
	case json_type_string:
		s = json_object_get_string(v);
		if (escape)
			return emit_escaped(r, s,
			    (size_t)json_object_get_string_len(v));
		return emit(r, s, (size_t)json_object_get_string_len(v));
	case json_type_null:
	case json_type_object:
	case json_type_array:
		break;
	}
	return 0;
}

/* Section truth: null, false, 0, 0.0, "" and [] are false; everything else,
 * an empty object included, is true. */
static int
truthy(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		return json_object_get_boolean(v);
	case json_type_int:
		return json_object_get_int64(v) != 0;
	case json_type_double:
		return json_object_get_double(v) != 0.0;
	case json_type_string:
		return json_object_get_string_len(v) > 0;
	case json_type_array:
		return json_object_array_length(v) > 0;
	case json_type_object:
		return 1;
	case json_type_null:
		break;
	}
	return 0;
}

/* Copy the dot-separated part starting at s into part; return the dot
 * after it or NULL.  Compiled names are at most TMPL_TAG_MAX bytes. */
static const char *
name_part(const char *s, char *part)
{
	const char *dot = strchr(s, '.');
	size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);

	assert(n <= TMPL_TAG_MAX);
	memcpy(part, s, n);
	part[n] = '\0';
	return dot;
}

/*
 * Mustache lookup: the first part of a dotted name is searched from the top
 * of the context stack down; the rest only inside what it found, so a
 * broken chain is empty rather than borrowing an outer frame's value.
 * Returns the value, or NULL (JSON null) when missing.
 */
static struct json_object *
lookup(const struct render *r, const char *name)
{
	char part[TMPL_TAG_MAX + 1];
	struct json_object *v = NULL;
	const char *dot;
	size_t i;
	int found = 0;

	if (strcmp(name, ".") == 0)
		return r->stack[r->sp - 1];
	dot = name_part(name, part);
	for (i = r->sp; i > 0 && !found; i--)
		found = json_object_is_type(r->stack[i - 1], json_type_object) &&
		    json_object_object_get_ex(r->stack[i - 1], part, &v);
	if (!found)
		return NULL;
	while (dot != NULL) {
		dot = name_part(dot + 1, part);
		if (!json_object_is_type(v, json_type_object) ||
		    !json_object_object_get_ex(v, part, &v))
			return NULL;
	}
	return v;
}

/* Count one step of work and one level of nesting below depth. */
static int
enter(struct render *r, const struct tmpl *t, const struct tok *k,
    size_t depth)
{
	if (++r->work > TMPL_WORK_MAX) {
		tmpl_errf(t, r->err, r->errsz, "work limit exceeded at line %u",
		    k->line);
		return -1;
	}
	if (depth + 1 > TMPL_DEPTH_MAX) {
		tmpl_errf(t, r->err, r->errsz, "nesting deeper than %d at line "
		    "%u (recursive partial?)", TMPL_DEPTH_MAX, k->line);
		return -1;
	}
	return 0;
}

/* Render the body of section k one level deeper, with v pushed as the
 * current context when push is set. */
static int
render_body(struct render *r, const struct tmpl *t, const struct tok *k,
    size_t depth, int push, struct json_object *v)
{
	int rc;

	if (enter(r, t, k, depth) == -1)
		return -1;
	if (push) {
		assert(r->sp < sizeof(r->stack) / sizeof(r->stack[0]));
		r->stack[r->sp++] = v;
	}
	rc = render_toks(r, t, (size_t)(k - t->toks) + 1, k->end, depth + 1);
	if (push)
		r->sp--;
	return rc;
}

/* A partial sees the caller's whole context stack, as in mustache. */
static int
render_partial(struct render *r, const struct tmpl *t, const struct tok *k,
    size_t depth)
{
	char msg[TMPL_ERR_MAX];
	const struct tmpl *p;

	if (enter(r, t, k, depth) == -1)
		return -1;
	p = set_get(r->set, t->names + k->off, "partial", msg, sizeof(msg));
	if (p == NULL) {
		tmpl_errf(t, r->err, r->errsz, "%s, included at line %u", msg,
		    k->line);
		return -1;
	}
	return render_toks(r, p, 0, p->ntok, depth + 1);
}

static int
render_section(struct render *r, const struct tmpl *t, const struct tok *k,
    size_t depth)
{
	struct json_object *v = lookup(r, t->names + k->off);
	size_t i, n;

	if (k->kind == TOK_INVERTED)
		return truthy(v) ? 0 : render_body(r, t, k, depth, 0, NULL);
	if (json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		for (i = 0; i < n; i++)
			if (render_body(r, t, k, depth, 1,
			    json_object_array_get_idx(v, i)) == -1)
				return -1;
		return 0;
	}
	return truthy(v) ? render_body(r, t, k, depth, 1, v) : 0;
}

static int
render_toks(struct render *r, const struct tmpl *t, size_t begin, size_t end,
    size_t depth)
{
	const struct tok *k;
	size_t i;

	for (i = begin; i < end; i++) {
		k = &t->toks[i];
		if (++r->work > TMPL_WORK_MAX) {
			tmpl_errf(t, r->err, r->errsz, "work limit exceeded at "
			    "line %u", k->line);
			return -1;
		}
		switch (k->kind) {
		case TOK_TEXT:
			if (emit(r, t->src + k->off, k->len) == -1)
				return -1;
			break;
		case TOK_VAR:
		case TOK_RAW:
			if (emit_value(r, lookup(r, t->names + k->off),
			    k->kind == TOK_VAR) == -1)
				return -1;
			break;
		case TOK_SECTION:
		case TOK_INVERTED:
			if (render_section(r, t, k, depth) == -1)
				return -1;
			i = k->end;
			break;
		case TOK_PARTIAL:
			if (render_partial(r, t, k, depth) == -1)
				return -1;
			break;
		case TOK_CLOSE:
			/* Each section jumps past its own close. */
			assert(!"close token reached");
			break;
		}
	}
	return 0;
}

/* Render t with ctx (and top, when not NULL, above it) onto out; roll out
 * back to its entry length on error. */
static int
render_root(struct tmpl_set *set, const struct tmpl *t,
    struct json_object *ctx, struct json_object *top, struct tmpl_buf *out,
    char *err, size_t errsz)
{
	struct render r;
	size_t start = out->len;

	memset(&r, 0, sizeof(r));
	r.set = set;
	r.out = out;
	r.err = err;
	r.errsz = errsz;
	r.stack[r.sp++] = ctx;
	if (top != NULL)
		r.stack[r.sp++] = top;
	/* An empty render still leaves out->data a valid string. */
	if (emit(&r, "", 0) == -1 || render_toks(&r, t, 0, t->ntok, 0) == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

int
tmpl_render(struct tmpl_set *set, const char *name, struct json_object *ctx,
    struct tmpl_buf *out, char *err, size_t errsz)
{
	const struct tmpl *t;

	t = set_get(set, name, "template", err, errsz);
	if (t == NULL)
		return -1;
	return render_root(set, t, ctx, NULL, out, err, errsz);
}

int
tmpl_render_string(struct tmpl_set *set, const char *text,
    struct json_object *ctx, struct tmpl_buf *out, char *err, size_t errsz)
{
	struct tmpl *t;
	char *src;
	size_t n;
	int rc;

	if (text == NULL) {
		seterr(err, errsz, "no template text");
		return -1;
	}
	n = strlen(text);
	src = malloc(n + 1);
	if (src == NULL) {
		seterr(err, errsz, "out of memory");
		return -1;
	}
	memcpy(src, text, n + 1);
	t = tmpl_new("(string)", src, n, err, errsz);
	if (t == NULL)
		return -1;
	rc = render_root(set, t, ctx, NULL, out, err, errsz);
	tmpl_free(t);
	return rc;
}

int
tmpl_render_page(struct tmpl_set *set, const char *layout, const char *page,
    struct json_object *ctx, struct tmpl_buf *out, char *err, size_t errsz)
{
	struct json_object *top = NULL, *s;
	const struct tmpl *lt;
	struct tmpl_buf body;
	int rc = -1;

	tmpl_buf_init(&body);
	/* Load the layout first: a broken layout fails before any page work. */
	lt = set_get(set, layout, "template", err, errsz);
	if (lt == NULL || tmpl_render(set, page, ctx, &body, err, errsz) == -1)
		goto fail;
	/* The page goes in as a fresh frame above ctx, so the caller's object
	 * is never modified and a ctx key of the same name is shadowed. */
	top = json_object_new_object();
	/* body.len <= TMPL_OUT_MAX, so the int json-c wants cannot overflow. */
	s = json_object_new_string_len(body.data, (int)body.len);
	if (top == NULL || s == NULL ||
	    json_object_object_add(top, TMPL_CONTENT_KEY, s) != 0) {
		json_object_put(s);
		seterr(err, errsz, "out of memory");
		goto fail;
	}
	tmpl_buf_free(&body);
	rc = render_root(set, lt, ctx, top, out, err, errsz);
fail:
	json_object_put(top);
	tmpl_buf_free(&body);
	return rc;
}
