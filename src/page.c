/* page.c - the frame every dashboard page shares: layout, common fields, cookies. */
#include "page.h"

#include <stdio.h>
#include <string.h>

#include "tm.h"
#include "util.h"

void
page_cookie(struct req *r, const char *name, const char *value, long max_age)
{
	req_header(r, "Set-Cookie: %s=%s; Path=/; Max-Age=%ld; HttpOnly; "
	    "SameSite=Strict%s", name, value, max_age,
	    req_is_https(r) ? "; Secure" : "");
}

int
page_send(struct req *r, int status, const char *name, const char *title,
    json_object *ctx)
{
	const struct req_ctx *c = r->ctx;
	struct tmpl_buf out;
	struct tm_zone_info zi;
	char err[TMPL_ERR_MAX];
	int rc;

	if (ctx == NULL && (ctx = json_object_new_object()) == NULL)
		return req_error(r, 500, "out of memory");
	json_object_object_add(ctx, "node_name", json_object_new_string(c->conf->name));
	json_object_object_add(ctx, "node_id", json_object_new_string(c->id->node_id));
	json_object_object_add(ctx, "title", json_object_new_string(title));
	json_object_object_add(ctx, "timezone", json_object_new_string(c->conf->timezone));
	if (tm_zone_at(c->conf->timezone, tm_now_ms(), &zi) == 0)
		json_object_object_add(ctx, "utc_offset", json_object_new_string(zi.offset));
	if (r->auth.user_id != 0) {
		json_object *u = json_object_new_object();
		json_object_object_add(u, "name", json_object_new_string(r->auth.user));
		json_object_object_add(u, "role", json_object_new_string(r->auth.role));
		json_object_object_add(ctx, "user", u);
		json_object_object_add(ctx, "csrf", json_object_new_string(r->auth.csrf));
		json_object_object_add(ctx, "is_super", json_object_new_boolean(
		    strcmp(r->auth.role, "superadmin") == 0));
	}
	tmpl_buf_init(&out);
	rc = tmpl_render_page(c->tmpl, "layout", name, ctx, &out, err,
	    sizeof(err));
	json_object_put(ctx);
	if (rc == -1) {
		tmpl_buf_free(&out);
		return req_error(r, 500, "template %s: %s", name, err);
	}
	/* Pages never load anything from elsewhere; say so to the browser. */
	req_header(r, "Content-Security-Policy: default-src 'self'; "
	    "frame-ancestors 'none'; form-action 'self'");
	req_header(r, "X-Frame-Options: DENY");
	req_header(r, "Referrer-Policy: same-origin");
	rc = req_send(r, status, "text/html; charset=utf-8", out.data, out.len);
	tmpl_buf_free(&out);
	return rc;
}

/*
 * ms since the epoch as the node's local time with the zone named
 * ("2026-11-21 23:29:17 EST").  Falls back to UTC when the zone is
 * unusable, so a time is never shown without saying which zone it is in.
 */
void
page_time_ms(const struct conf *c, int64_t ms, char *buf, size_t bufsz)
{
	struct tm_zone_info zi;
	char utc[TM_RFC3339_LEN];

	if (tm_zone_at(c->timezone, ms, &zi) == -1) {
		util_fmt(buf, bufsz, "%s", tm_rfc3339_s(utc, sizeof(utc), ms));
		return;
	}
	/* zi.local is "YYYY-MM-DDTHH:MM:SS+hh:mm": keep date and time. */
	util_fmt(buf, bufsz, "%.10s %.8s %s", zi.local, zi.local + 11,
	    zi.abbrev[0] != '\0' ? zi.abbrev : zi.offset);
}

/* A stored UTC RFC 3339 string in local time; unparsable text is shown
 * as it is (it is escaped by the template like any other value). */
void
page_time(const struct conf *c, const char *utc, char *buf, size_t bufsz)
{
	int64_t ms;

	if (utc == NULL || tm_parse_rfc3339(utc, &ms) == -1)
		util_fmt(buf, bufsz, "%s", utc ? utc : "");
	else
		page_time_ms(c, ms, buf, bufsz);
}
