/* tmpl.h - mustache-subset HTML templates over json-c data for the dashboard. */
#ifndef MESHSYNC_TMPL_H
#define MESHSYNC_TMPL_H

#include <stddef.h>

#include <json-c/json.h>

/*
 * Supported tags: {{name}} (HTML-escaped), {{{name}}} and {{& name}} (raw,
 * for trusted pre-rendered HTML only), dotted names {{a.b.c}}, {{.}},
 * {{#name}}..{{/name}}, {{^name}}..{{/name}}, {{! comment }}, {{> partial}}.
 * Not supported (an error, never silently ignored): set-delimiter tags
 * {{=<% %>=}}, lambdas, and stripping of standalone tag lines.
 *
 * Tag names are [A-Za-z0-9_-] parts joined by single dots, or ".".
 * Template names are [a-z0-9_-]+ and map to DIR/NAME.html, so a name can
 * never leave the template directory.
 */

/* Longest template name, excluding the NUL. */
#define TMPL_NAME_MAX		64
/* Longest tag name ("a.b.c"), excluding the NUL. */
#define TMPL_TAG_MAX		127
/* Largest template file read from disk. */
#define TMPL_FILE_MAX		(1024 * 1024)
/* Deepest nesting of sections in one template, and of sections plus
 * partials while rendering; stops runaway recursive partials. */
#define TMPL_DEPTH_MAX		64
/* Largest output of one render; a bigger page is an error, not a truncation. */
#define TMPL_OUT_MAX		(8 * 1024 * 1024)
/* Most tokens visited plus section iterations per render, so nested
 * sections over big arrays that print nothing still cannot spin forever. */
#define TMPL_WORK_MAX		(16 * 1024 * 1024)
/* Most distinct templates one set caches. */
#define TMPL_CACHE_MAX		256
/* Variable under which tmpl_render_page hands the page to the layout. */
#define TMPL_CONTENT_KEY	"content"
/* A comfortable size for the caller's error buffer. */
#define TMPL_ERR_MAX		256

/*
 * Growable output buffer owned by the caller.  After a successful append or
 * render, data is NUL-terminated (len does not count the NUL); data may hold
 * NUL bytes only if a raw variable put them there.
 */
struct tmpl_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

/* Template directory plus the per-process cache of compiled templates. */
struct tmpl_set;

/* Make an empty buffer (data NULL, nothing allocated).  Cannot fail. */
void	 tmpl_buf_init(struct tmpl_buf *b);

/*
 * Append n bytes of s.  Returns 0, or -1 with errno ENOMEM, or EFBIG when
 * the buffer would grow past TMPL_OUT_MAX; b is unchanged on error.
 */
int	 tmpl_buf_append(struct tmpl_buf *b, const char *s, size_t n);

/* Free b->data and reset b to the empty state.  b may be re-used. */
void	 tmpl_buf_free(struct tmpl_buf *b);

/* Return 1 when name is a valid template name ([a-z0-9_-], 1 to
 * TMPL_NAME_MAX bytes), 0 otherwise (NULL included). */
int	 tmpl_name_valid(const char *name);

/*
 * Create a set reading templates from dir (copied; must be an existing
 * directory).  Templates are loaded and compiled on first use and then kept
 * for the life of the set, so edits on disk need a new set (in practice a
 * worker restart).  A set is not thread-safe: one per worker process.
 * Returns the set, freed by the caller with tmpl_set_free, or NULL with a
 * message in err (errsz bytes; err may be NULL).
 */
struct tmpl_set *tmpl_set_new(const char *dir, char *err, size_t errsz);

/* Free the set and every cached template.  NULL is allowed. */
void	 tmpl_set_free(struct tmpl_set *set);

/*
 * Render template `name` from set with ctx as the root context (borrowed,
 * never modified; NULL renders every variable empty), appending to out.
 * Returns 0, or -1 with a message in err ("unclosed section 'x' at line 12
 * in template 'page'", "unknown partial 'y'", ...); on error out is rolled
 * back to its length on entry, so a half page is never sent.
 */
int	 tmpl_render(struct tmpl_set *set, const char *name,
	    struct json_object *ctx, struct tmpl_buf *out, char *err,
	    size_t errsz);

/*
 * As tmpl_render, but compile the NUL-terminated template text instead of a
 * named file (compiled per call, not cached).  Partials come from set; set
 * may be NULL, and then any partial is an error.
 */
int	 tmpl_render_string(struct tmpl_set *set, const char *text,
	    struct json_object *ctx, struct tmpl_buf *out, char *err,
	    size_t errsz);

/*
 * Render template `page` with ctx, then render template `layout` with the
 * page's output available as the raw variable TMPL_CONTENT_KEY (use
 * {{{content}}}) on top of ctx, appending the result to out.  ctx is not
 * modified.  Returns 0, or -1 with a message in err and out rolled back.
 */
int	 tmpl_render_page(struct tmpl_set *set, const char *layout,
	    const char *page, struct json_object *ctx, struct tmpl_buf *out,
	    char *err, size_t errsz);

#endif
