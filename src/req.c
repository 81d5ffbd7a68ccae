/* req.c - request parsing and response writing over libfcgi; the only file that touches FCGX streams. */
#include "req.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "keys.h"
#include "log.h"
#include "sign.h"
#include "util.h"

static const struct {
	int		 code;
	const char	*text;
} req_statuses[] = {
	{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
	{ 204, "No Content" }, { 206, "Partial Content" },
	{ 302, "Found" }, { 303, "See Other" }, { 304, "Not Modified" },
	{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
	{ 404, "Not Found" }, { 405, "Method Not Allowed" },
	{ 409, "Conflict" }, { 411, "Length Required" },
	{ 413, "Content Too Large" }, { 415, "Unsupported Media Type" },
	{ 422, "Unprocessable Content" }, { 423, "Locked" },
	{ 429, "Too Many Requests" }, { 500, "Internal Server Error" },
	{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
};

const char *
req_status_text(int status)
{
	for (size_t i = 0; i < sizeof(req_statuses) / sizeof(req_statuses[0]);
	    i++)
		if (req_statuses[i].code == status)
			return req_statuses[i].text;
	return "Unknown";
}

static const char *
param(FCGX_Request *f, const char *name)
{
	const char *v = FCGX_GetParam(name, f->envp);

	return v != NULL ? v : "";
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
req_urldecode(char *dst, size_t dstsz, const char *src, size_t len, int form)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)src[i];

		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hexval((unsigned char)src[i + 1]);
			lo = hexval((unsigned char)src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
			if (c == 0)
				return -1;
		} else if (c == '+' && form)
			c = ' ';
		if (o + 1 >= dstsz)
			return -1;
		dst[o++] = (char)c;
	}
	if (dstsz == 0)
		return -1;
	dst[o] = '\0';
	return 0;
}

/* Split "a=1&b=2" into params; values are decoded copies owned by r. */
static int
parse_pairs(struct req *r, const char *s, size_t len)
{
	const char *end = s + len;

	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *eq;
		size_t plen = amp ? (size_t)(amp - s) : (size_t)(end - s);
		size_t klen, vlen;
		char *k, *v;

		if (plen == 0) {
			s += 1;
			continue;
		}
		if (r->nparams >= REQ_MAX_PARAMS)
			return -1;
		eq = memchr(s, '=', plen);
		klen = eq ? (size_t)(eq - s) : plen;
		vlen = eq ? plen - klen - 1 : 0;
		if (klen > 256 || vlen > 3 * REQ_MAX_PARAM_LEN)
			return -1;
		k = malloc(klen + 1);
		v = malloc(vlen + 1);
		if (k == NULL || v == NULL ||
		    req_urldecode(k, klen + 1, s, klen, 1) == -1 ||
		    req_urldecode(v, vlen + 1, eq ? eq + 1 : "", vlen, 1) == -1) {
			free(k);
			free(v);
			return -1;
		}
		r->params[r->nparams].key = k;
		r->params[r->nparams].val = v;
		r->nparams++;
		s += plen + (amp ? 1 : 0);
	}
	return 0;
}

int
req_init(struct req *r, const struct req_ctx *ctx, void *fcgx)
{
	FCGX_Request *f = fcgx;
	const char *cl, *uri, *q;
	const char *es;
	long long n;

	memset(r, 0, sizeof(*r));
	r->start_us = util_mono_us();
	r->ctx = ctx;
	r->io = f;
	r->method = param(f, "REQUEST_METHOD");
	/* MESHSYNC_PATH is our own parameter: stock fastcgi_params may set
	 * SCRIPT_NAME and friends first, and the first value wins. */
	uri = param(f, "MESHSYNC_PATH");
	if (*uri == '\0')
		uri = param(f, "DOCUMENT_URI");
	r->path = uri;
	r->query = param(f, "QUERY_STRING");
	r->request_uri = param(f, "MESHSYNC_REQUEST_URI");
	r->signature = param(f, "HTTP_X_MESHSYNC_SIGNATURE");
	r->authorization = param(f, "HTTP_AUTHORIZATION");
	r->csrf_header = param(f, "HTTP_X_CSRF_TOKEN");
	r->remote_addr = param(f, "MESHSYNC_REMOTE_ADDR");
	if (*r->remote_addr == '\0')
		r->remote_addr = param(f, "REMOTE_ADDR");
	r->content_type = param(f, "CONTENT_TYPE");
	r->cookie = param(f, "HTTP_COOKIE");
	r->https = param(f, "HTTPS");
	r->host = param(f, "HTTP_HOST");
	r->origin = param(f, "HTTP_ORIGIN");
	r->body_file = param(f, "MESHSYNC_BODY_FILE");
	r->content_length = -1;
	cl = param(f, "CONTENT_LENGTH");
	if (*cl != '\0' && util_strtonum(cl, 0, 1LL << 50, &n, &es) == 0)
		r->content_length = n;
	q = r->query;
	if (parse_pairs(r, q, strlen(q)) == -1) {
		req_error(r, 400, "malformed query string");
		return -1;
	}
	return 0;
}

void
req_finish(struct req *r)
{
	char path[256];

	log_info("%s %s %d %lluus", r->method,
	    log_scrub(path, sizeof(path), r->path), r->status,
	    (unsigned long long)(util_mono_us() - r->start_us));
	for (size_t i = 0; i < r->nparams; i++) {
		free(r->params[i].key);
		free(r->params[i].val);
	}
	for (size_t i = 0; i < r->nheaders; i++)
		free(r->headers[i]);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int
req_body(struct req *r, size_t max)
{
	FCGX_Request *f = r->io;
	size_t cap, got = 0;
	char *buf;

	if (r->body_read)
		return 0;
	if (r->content_length > (long long)max)
		return -2;
	/* Without a length (chunked bodies are buffered by nginx, which then
	 * sets it) read up to max and refuse anything beyond. */
	cap = r->content_length >= 0 ? (size_t)r->content_length : max;
	buf = malloc(cap + 1);
	if (buf == NULL)
		return -1;
	while (got < cap) {
		int n = FCGX_GetStr(buf + got, (int)(cap - got > 65536 ? 65536 :
		    cap - got), f->in);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (r->content_length < 0 && got == cap && FCGX_GetChar(f->in) != EOF) {
		free(buf);
		return -2;
	}
	if (r->content_length >= 0 && got != cap) {
		free(buf);
		return -1;
	}
	buf[got] = '\0';
	r->body = buf;
	r->body_len = got;
	r->body_read = 1;
	return 0;
}

static int
read_body_or_fail(struct req *r)
{
	switch (req_body(r, (size_t)r->ctx->conf->max_body)) {
	case 0:
		return 0;
	case -2:
		req_error(r, 413, "request body larger than %lld bytes",
		    r->ctx->conf->max_body);
		return -1;
	default:
		req_error(r, 400, "could not read the request body");
		return -1;
	}
}

int
req_json_body(struct req *r, json_object **out)
{
	struct json_tokener *tok = NULL;
	json_object *obj = NULL;
	enum json_tokener_error jerr;

	*out = NULL;
	if (read_body_or_fail(r) == -1)
		return -1;
	if (r->body_len == 0) {
		req_error(r, 400, "empty body: JSON expected");
		return -1;
	}
	if (strlen(r->body) != r->body_len) {
		req_error(r, 400, "NUL byte in JSON body");
		return -1;
	}
	tok = json_tokener_new_ex(REQ_JSON_DEPTH);
	if (tok == NULL) {
		req_error(r, 500, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, r->body, (int)r->body_len);
	jerr = json_tokener_get_error(tok);
	if (obj == NULL || jerr != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != r->body_len) {
		req_error(r, 400, "invalid JSON: %s",
		    jerr != json_tokener_success ?
		    json_tokener_error_desc(jerr) : "trailing data");
		json_object_put(obj);
		json_tokener_free(tok);
		return -1;
	}
	json_tokener_free(tok);
	*out = obj;
	return 0;
}

int
req_form_body(struct req *r)
{
	if (read_body_or_fail(r) == -1)
		return -1;
	if (strncmp(r->content_type, "application/x-www-form-urlencoded",
	    33) != 0 && r->body_len > 0) {
		req_error(r, 415, "form body expected");
		return -1;
	}
	if (parse_pairs(r, r->body, r->body_len) == -1) {
		req_error(r, 400, "malformed form body");
		return -1;
	}
	return 0;
}

const char *
req_param(const struct req *r, const char *key)
{
	/* The last occurrence wins so a form field overrides the query. */
	for (size_t i = r->nparams; i > 0; i--)
		if (strcmp(r->params[i - 1].key, key) == 0)
			return r->params[i - 1].val;
	return NULL;
}

int
req_cookie(const struct req *r, const char *name, char *buf, size_t bufsz)
{
	const char *p = r->cookie;
	size_t nlen = strlen(name);

	while (*p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = strcspn(v, ";");
			if (vlen >= bufsz)
				return -1;
			memcpy(buf, v, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p += strcspn(p, ";");
	}
	return -1;
}

int
req_header(struct req *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (r->nheaders >= REQ_MAX_HEADERS)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(line, "\r\n"))
		return -1;
	if ((r->headers[r->nheaders] = strdup(line)) == NULL)
		return -1;
	r->nheaders++;
	return 0;
}

int
req_is_https(const struct req *r)
{
	return strcmp(r->https, "on") == 0;
}

int
req_send(struct req *r, int status, const char *ctype, const char *body,
    size_t len)
{
	FCGX_Request *f = r->io;
	char head[512];
	int n;

	if (r->responded)
		return -1;
	r->responded = 1;
	r->status = status;
	/* Formatted with snprintf: FCGX_FPrintF does not know %zu. */
	n = snprintf(head, sizeof(head), "Status: %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n", status,
	    req_status_text(status), ctype, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	FCGX_PutStr(head, n, f->out);
	if (r->auth.peer_id != 0 && r->ctx->id != NULL) {
		char hash[KEYS_HASH_HEX], sig[KEYS_SIG_HEX], line[256];
		keys_sha256_hex(hash, body ? body : "", len);
		if (sign_response(sig, r->ctx->id, r->auth.peer_nonce, status,
		    hash) == 0) {
			n = snprintf(line, sizeof(line), "%s: %s\r\n",
			    SIGN_RESP_HEADER, sig);
			FCGX_PutStr(line, n, f->out);
		}
	}
	for (size_t i = 0; i < r->nheaders; i++) {
		FCGX_PutS(r->headers[i], f->out);
		FCGX_PutStr("\r\n", 2, f->out);
	}
	FCGX_PutStr("\r\n", 2, f->out);
	if (len > 0 && strcmp(r->method, "HEAD") != 0)
		FCGX_PutStr(body, (int)len, f->out);
	return 0;
}

int
req_json(struct req *r, int status, json_object *obj)
{
	const char *s;
	size_t len;
	int rc;

	if (obj == NULL)
		return req_error(r, 500, "out of memory");
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	rc = req_send(r, status, "application/json", s, len);
	json_object_put(obj);
	return rc;
}

int
req_error(struct req *r, int status, const char *fmt, ...)
{
	char msg[512], scrubbed[512], path[128];
	json_object *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_scrub(scrubbed, sizeof(scrubbed), msg);
	if (status >= 500)
		log_err("%s %s: %s", r->method,
		    log_scrub(path, sizeof(path), r->path), scrubbed);
	else
		log_warnx("%s %s from %s: %d %s", r->method,
		    log_scrub(path, sizeof(path), r->path), r->remote_addr,
		    status, scrubbed);
	o = json_object_new_object();
	if (o == NULL)
		return req_send(r, status, "application/json",
		    "{\"error\":\"out of memory\"}", 25);
	json_object_object_add(o, "error", json_object_new_string(msg));
	return req_json(r, status, o);
}

int
req_redirect(struct req *r, const char *location)
{
	if (req_header(r, "Location: %s", location) == -1)
		return req_error(r, 500, "bad redirect");
	return req_send(r, 303, "text/plain", "", 0);
}
