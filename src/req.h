/* req.h - the request layer: one struct req per FastCGI request, input helpers, JSON/HTML responses. */
#ifndef MESHSYNC_REQ_H
#define MESHSYNC_REQ_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"
#include "store.h"
#include "tmpl.h"

#define REQ_MAX_PARAMS		64	/* query or form fields */
#define REQ_MAX_PARAM_LEN	8192	/* one decoded value */
#define REQ_JSON_DEPTH		32	/* json-c tokener depth */
#define REQ_MAX_HEADERS		16	/* extra response headers */

/* What every request handler can reach: read-only config and identity,
 * the worker's state DB handle. */
struct req_ctx {
	const struct conf		*conf;
	const struct store_identity	*id;
	sqlite3				*db;
	struct tmpl_set			*tmpl;		/* per-worker cache */
};

struct req_param {
	char	*key;
	char	*val;
};

/* Who is asking, filled by the access check before the handler runs. */
struct req_auth {
	int		 user_id;		/* 0: no user session */
	char		 user[64];
	char		 role[16];		/* "superadmin", "admin", "" */
	char		 csrf[65];		/* the session's CSRF token */
	int		 peer_id;		/* 0: not a signed peer request */
	char		 peer_node[STORE_NODE_ID_LEN];
	char		 peer_name[128];
	char		 peer_nonce[33];	/* to sign the response */
};

struct req {
	const struct req_ctx	*ctx;
	void			*io;		/* the FastCGI request, opaque */

	/* From the web server (never NULL; "" when absent). */
	const char	*method;
	const char	*path;			/* without the query */
	const char	*query;
	const char	*request_uri;		/* raw, as the client sent it */
	const char	*signature;		/* X-Meshsync-Signature */
	const char	*authorization;
	const char	*csrf_header;		/* X-CSRF-Token */
	const char	*remote_addr;
	const char	*content_type;
	const char	*cookie;
	const char	*https;			/* "on" over TLS */
	const char	*host;
	const char	*origin;
	const char	*body_file;		/* nginx's temp file for uploads */
	long long	 content_length;	/* -1 when absent */

	struct req_param params[REQ_MAX_PARAMS];	/* query + form */
	size_t		 nparams;

	char		*body;			/* read by req_body() */
	size_t		 body_len;
	int		 body_read;

	struct req_auth	 auth;

	/* Response state. */
	int		 status;
	int		 responded;
	char		*headers[REQ_MAX_HEADERS];
	size_t		 nheaders;
	uint64_t	 start_us;
};

/*
 * Fill r from a FastCGI request (an FCGX_Request *, opaque above this
 * layer): CGI parameters and the query string.  Returns 0, or -1 when the
 * query cannot be parsed (a 400 has then been sent).
 */
int	 req_init(struct req *r, const struct req_ctx *ctx, void *fcgx);

/* Write the access-log line and free everything the request owns. */
void	 req_finish(struct req *r);

/*
 * Read the body (at most max bytes, else 413 is the caller's answer: the
 * function returns -2 without reading anything).  -1 on read error or
 * allocation failure.  The body is owned by the request.
 */
int	 req_body(struct req *r, size_t max);

/*
 * Parse the body as one JSON value (size limited by conf max_body, depth by
 * REQ_JSON_DEPTH).  On success *out is owned by the caller (json_object_put).
 * On failure the 4xx response has already been sent and -1 is returned.
 */
int	 req_json_body(struct req *r, json_object **out);

/* Parse an application/x-www-form-urlencoded body into params.  On failure
 * the 4xx has been sent and -1 returned. */
int	 req_form_body(struct req *r);

/* A query/form parameter, or NULL.  The string is owned by the request. */
const char *req_param(const struct req *r, const char *key);

/* Value of one cookie into buf; 0 when present, -1 otherwise. */
int	 req_cookie(const struct req *r, const char *name, char *buf,
	    size_t bufsz);

/* Add a response header line ("Name: value", no CRLF).  -1 when full. */
int	 req_header(struct req *r, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Send a JSON response and release obj (ownership passes in). */
int	 req_json(struct req *r, int status, json_object *obj);

/* Send {"error": "..."}: the one place client errors become JSON 4xx/5xx.
 * The reason is also logged (scrubbed) with the route. */
int	 req_error(struct req *r, int status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Send a body with a content type (HTML pages, Prometheus text). */
int	 req_send(struct req *r, int status, const char *ctype,
	    const char *body, size_t len);

/* 303 See Other to a local path (after a form post). */
int	 req_redirect(struct req *r, const char *location);

/* True when the request arrived over TLS (cookies then get Secure). */
int	 req_is_https(const struct req *r);

/* Status line text for a code ("Not Found"). */
const char *req_status_text(int status);

/* URL-decode src into dst (dstsz).  '+' becomes a space when form is set.
 * Returns 0, or -1 on bad escapes, NUL bytes or truncation. */
int	 req_urldecode(char *dst, size_t dstsz, const char *src, size_t len,
	    int form);

#endif
