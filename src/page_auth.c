/* page_auth.c - logging in and out: the login form, throttling, sessions, API tokens. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "keys.h"
#include "log.h"
#include "page.h"
#include "session.h"
#include "tm.h"
#include "users.h"
#include "util.h"

/* Only a local dashboard path may follow a login: never an open redirect. */
static const char *
safe_next(const char *next)
{
	if (next == NULL || strncmp(next, "/sync/", 6) != 0 ||
	    strpbrk(next, "\\\"'<>\r\n ") != NULL || strstr(next, "//") != NULL ||
	    strlen(next) > 200)
		return "/sync/dashboard";
	return next;
}

static int
login_form(struct req *r, int status, const char *error, const char *user)
{
	char token[SESSION_CSRF_HEX];
	json_object *ctx = json_object_new_object();
	const char *next = req_param(r, "next");

	/* A pre-session CSRF token, double-submitted: the form carries it
	 * and the cookie must match, so another site cannot log a victim
	 * into an attacker's account. */
	if (req_cookie(r, "ms_csrf", token, sizeof(token)) == -1 ||
	    strlen(token) != SESSION_CSRF_HEX - 1) {
		util_random_hex(token, sizeof(token), 32);
		page_cookie(r, "ms_csrf", token, 3600);
	}
	json_object_object_add(ctx, "login_csrf", json_object_new_string(token));
	json_object_object_add(ctx, "next", json_object_new_string(safe_next(next)));
	if (error != NULL)
		json_object_object_add(ctx, "error", json_object_new_string(error));
	if (user != NULL)
		json_object_object_add(ctx, "username", json_object_new_string(user));
	return page_send(r, status, "login", "Log in", ctx);
}

int
page_login(struct req *r)
{
	return login_form(r, 200, NULL, NULL);
}

/* Shared by the form and the JSON login: throttle, verify, create.
 * Returns the user id, 0 after answering with a refusal. */
static int
authenticate(struct req *r, const char *user, const char *pw, int page,
    char *role, size_t rolesz)
{
	char msg[128], name[80];
	int64_t now = tm_now_ms();
	int wait, id;

	wait = session_throttled(r->ctx->db, user, r->remote_addr, now);
	if (wait > 0) {
		util_fmt(msg, sizeof(msg), "Too many failed logins: try again "
		    "in %d s.", wait);
		req_header(r, "Retry-After: %d", wait);
		log_warnx("login throttled for %s from %s",
		    log_scrub(name, sizeof(name), user), r->remote_addr);
		if (page)
			login_form(r, 429, msg, user);
		else
			req_error(r, 429, "%s", msg);
		return 0;
	}
	id = users_verify(r->ctx->db, user, pw, role, rolesz);
	session_login_result(r->ctx->db, user, r->remote_addr, id > 0, now);
	if (id <= 0) {
		log_warnx("failed login for %s from %s",
		    log_scrub(name, sizeof(name), user), r->remote_addr);
		store_event(r->ctx->db, "warn", "auth", NULL, "failed login for "
		    "'%s' from %s", name, r->remote_addr);
		if (page)
			login_form(r, 401, "Wrong user name or password.", user);
		else
			req_error(r, 401, "wrong user name or password");
		return 0;
	}
	log_info("login: %s from %s", log_scrub(name, sizeof(name), user),
	    r->remote_addr);
	return id;
}

int
page_login_post(struct req *r)
{
	char cookie[SESSION_CSRF_HEX], sid[SESSION_ID_HEX], csrf[SESSION_CSRF_HEX];
	char role[16];
	const char *user, *pw, *sent;
	int id;

	if (req_form_body(r) == -1)
		return 0;
	user = req_param(r, "user");
	pw = req_param(r, "password");
	sent = req_param(r, "csrf");
	if (req_cookie(r, "ms_csrf", cookie, sizeof(cookie)) == -1 ||
	    sent == NULL || !keys_streq(sent, cookie))
		return login_form(r, 403, "The form expired: please try again.",
		    user);
	if (user == NULL || pw == NULL || *user == '\0' || *pw == '\0')
		return login_form(r, 400, "Enter a user name and a password.",
		    user);
	if ((id = authenticate(r, user, pw, 1, role, sizeof(role))) == 0)
		return 0;
	if (session_create(r->ctx->db, id, r->remote_addr, tm_now_ms(), sid,
	    csrf) == -1)
		return req_error(r, 500, "cannot create a session");
	page_cookie(r, "ms_session", sid, r->ctx->conf->session_max);
	page_cookie(r, "ms_csrf", csrf, r->ctx->conf->session_max);
	return req_redirect(r, safe_next(req_param(r, "next")));
}

int
page_logout(struct req *r)
{
	char sid[SESSION_ID_HEX + 8];

	if (req_cookie(r, "ms_session", sid, sizeof(sid)) == 0)
		session_delete(r->ctx->db, sid);
	page_cookie(r, "ms_session", "", 0);
	page_cookie(r, "ms_csrf", "", 0);
	return req_redirect(r, "/sync/login");
}

int
api_login(struct req *r)
{
	char sid[SESSION_ID_HEX], csrf[SESSION_CSRF_HEX], role[16];
	json_object *body = NULL, *u, *p, *o;
	int id;

	if (req_json_body(r, &body) == -1)
		return 0;
	if (!json_object_is_type(body, json_type_object) ||
	    !json_object_object_get_ex(body, "user", &u) ||
	    !json_object_object_get_ex(body, "password", &p) ||
	    !json_object_is_type(u, json_type_string) ||
	    !json_object_is_type(p, json_type_string)) {
		json_object_put(body);
		return req_error(r, 400, "want {\"user\": string, \"password\": "
		    "string}");
	}
	id = authenticate(r, json_object_get_string(u),
	    json_object_get_string(p), 0, role, sizeof(role));
	json_object_put(body);
	if (id == 0)
		return 0;
	if (session_create(r->ctx->db, id, r->remote_addr, tm_now_ms(), sid,
	    csrf) == -1)
		return req_error(r, 500, "cannot create a session");
	o = json_object_new_object();
	json_object_object_add(o, "token", json_object_new_string(sid));
	json_object_object_add(o, "role", json_object_new_string(role));
	json_object_object_add(o, "expires_in",
	    json_object_new_int(r->ctx->conf->session_max));
	return req_json(r, 200, o);
}
