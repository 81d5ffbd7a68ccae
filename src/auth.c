/* auth.c - access checks applied by the route table: sessions, roles, CSRF, signed peers. */
#include "auth.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "peers.h"
#include "session.h"
#include "sign.h"
#include "tm.h"
#include "util.h"
#include "wake.h"

static int
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

/* Does addr fall in one of the space/comma-separated CIDRs or addresses? */
static int
addr_allowed(const char *addr, const char *list)
{
	unsigned char a[16], net[16];
	char item[64];
	const char *p = list;
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
	int alen = fam == AF_INET ? 4 : 16;

	if (inet_pton(fam, addr, a) != 1)
		return 0;
	while (*p != '\0') {
		size_t n;
		char *slash;
		long bits;

		p += strspn(p, " ,");
		n = strcspn(p, " ,");
		if (n == 0)
			break;
		if (n >= sizeof(item)) {
			p += n;
			continue;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		p += n;
		bits = alen * 8;
		if ((slash = strchr(item, '/')) != NULL) {
			*slash = '\0';
			bits = strtol(slash + 1, NULL, 10);
			if (bits < 0 || bits > alen * 8)
				continue;
		}
		if (inet_pton(fam, item, net) != 1)
			continue;
		{
			int ok = 1;
			for (long i = 0; i < bits; i++) {
				int byte = (int)(i / 8), bit = 7 - (int)(i % 8);
				if (((a[byte] >> bit) & 1) != ((net[byte] >> bit) & 1)) {
					ok = 0;
					break;
				}
			}
			if (ok)
				return 1;
		}
	}
	return 0;
}

/*
 * A signed peer request: the header parses, the sender is pinned and
 * enabled, the timestamp is inside the window, the signature covers this
 * method, URI, receiver and body, and the nonce is new.  Every refusal is
 * a 401 with the reason, logged, before anything is read or changed.
 */
static int
check_peer(struct req *r)
{
	const struct req_ctx *c = r->ctx;
	char err[128], body_hash[KEYS_HASH_HEX];
	struct sign_hdr h;
	struct peer p;
	int64_t now = tm_now_ms();
	int rc;

	if (*r->signature == '\0') {
		req_error(r, 401, "peer signature required");
		return -1;
	}
	if (c->conf->allow_from[0] != '\0' &&
	    !addr_allowed(r->remote_addr, c->conf->allow_from)) {
		req_error(r, 403, "peer requests are not allowed from %s",
		    r->remote_addr);
		return -1;
	}
	if (sign_parse(r->signature, &h, err, sizeof(err)) == -1) {
		req_error(r, 401, "%s", err);
		return -1;
	}
	if (strcmp(h.to, c->id->node_id) != 0) {
		req_error(r, 401, "signed for another node");
		return -1;
	}
	rc = peers_by_node(c->db, h.node, &p);
	if (rc == 1) {
		req_error(r, 401, "unknown peer %s: add it on this node first",
		    h.node);
		return -1;
	}
	if (rc == -1) {
		req_error(r, 500, "state DB error");
		return -1;
	}
	if (!p.enabled) {
		req_error(r, 401, "peer '%s' is disabled on this node", p.name);
		return -1;
	}
	if (h.ts_ms < now - SIGN_WINDOW_MS || h.ts_ms > now + SIGN_WINDOW_MS) {
		req_error(r, 401, "timestamp outside the accepted window "
		    "(clocks differ by %lld s)", (long long)(h.ts_ms - now) / 1000);
		return -1;
	}
	/* The body is read (bounded) to check its hash; an upload sits in
	 * nginx's temp file and is hashed from there, in constant memory. */
	if (*r->body_file != '\0') {
		int fd = open(r->body_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd == -1 || keys_sha256_fd(body_hash, fd) == -1) {
			if (fd != -1)
				close(fd);
			req_error(r, 500, "cannot read the uploaded body");
			return -1;
		}
		close(fd);
	} else {
		switch (req_body(r, (size_t)c->conf->max_body)) {
		case 0:
			break;
		case -2:
			req_error(r, 413, "request body larger than %lld bytes",
			    c->conf->max_body);
			return -1;
		default:
			req_error(r, 400, "could not read the request body");
			return -1;
		}
		keys_sha256_hex(body_hash, r->body ? r->body : "", r->body_len);
	}
	if (sign_verify(&h, p.pubkey, r->method, r->request_uri,
	    body_hash) == -1) {
		req_error(r, 401, "signature does not match the request");
		return -1;
	}
	rc = peers_nonce_use(c->db, h.node, h.nonce, h.ts_ms, now);
	if (rc != 0) {
		if (rc == 1)
			req_error(r, 401, "replayed request (nonce seen before)");
		else
			req_error(r, 500, "state DB error");
		return -1;
	}
	/* A signed request proves they pinned us: the pair is connected. */
	if (!p.they_know_us)
		peers_note(c->db, p.id, "seen", NULL, 1);
	/* A peer we last failed to reach is back: our worker should stop
	 * backing off and catch it up now, not when the backoff ends. */
	if (store_scalar_int(c->db, "SELECT last_error IS NOT NULL FROM peers "
	    "WHERE id = ?", p.id) == 1)
		wake_send(c->conf, "peers");
	r->auth.peer_id = p.id;
	util_strlcpy(r->auth.peer_node, p.node_id, sizeof(r->auth.peer_node));
	util_strlcpy(r->auth.peer_name, p.name, sizeof(r->auth.peer_name));
	util_strlcpy(r->auth.peer_nonce, h.nonce, sizeof(r->auth.peer_nonce));
	return 0;
}

static int
unauthenticated(struct req *r, int page)
{
	char loc[512], path[256];

	if (page) {
		/* Only our own paths go into `next`: no open redirect. */
		if (strncmp(r->path, "/sync/", 6) == 0 &&
		    strpbrk(r->path, "\"'<>&?# ") == NULL &&
		    util_fmt(path, sizeof(path), "%s", r->path) == 0)
			util_fmt(loc, sizeof(loc), "/sync/login?next=%s", path);
		else
			util_strlcpy(loc, "/sync/login", sizeof(loc));
		return req_redirect(r, loc), -1;
	}
	req_error(r, 401, "authentication required: log in or use a token");
	return -1;
}

static int
check_session(struct req *r, int need_super, int page)
{
	const struct req_ctx *c = r->ctx;
	char id[SESSION_ID_HEX + 8];
	const char *token = NULL;
	struct session s;
	int bearer = 0, rc;

	if (strncmp(r->authorization, "Bearer ", 7) == 0) {
		token = r->authorization + 7;
		bearer = 1;
	} else if (req_cookie(r, "ms_session", id, sizeof(id)) == 0)
		token = id;
	if (token == NULL)
		return unauthenticated(r, page);
	rc = session_lookup(c->db, token, tm_now_ms(), c->conf->session_idle,
	    c->conf->session_max, &s);
	if (rc == -1) {
		req_error(r, 500, "state DB error");
		return -1;
	}
	if (rc == 1)
		return unauthenticated(r, page);
	if (need_super && strcmp(s.role, "superadmin") != 0) {
		req_error(r, 403, "this needs the superadmin role");
		return -1;
	}
	r->auth.user_id = s.user_id;
	util_strlcpy(r->auth.user, s.user, sizeof(r->auth.user));
	util_strlcpy(r->auth.role, s.role, sizeof(r->auth.role));
	util_strlcpy(r->auth.csrf, s.csrf, sizeof(r->auth.csrf));
	/* Cookies ride along on cross-site requests; a bearer token does
	 * not, so only cookie sessions need the CSRF token on changes. */
	if (!bearer && strcmp(r->method, "GET") != 0 &&
	    strcmp(r->method, "HEAD") != 0) {
		const char *sent = r->csrf_header;
		if (*sent == '\0' && strncmp(r->content_type,
		    "application/x-www-form-urlencoded", 33) == 0) {
			if (req_form_body(r) == -1)
				return -1;
			sent = req_param(r, "csrf");
		}
		if (sent == NULL || *sent == '\0' || !keys_streq(sent, s.csrf)) {
			req_error(r, 403, "missing or wrong CSRF token");
			return -1;
		}
	}
	return 0;
}

int
auth_check(struct req *r, enum route_access access, int page)
{
	switch (access) {
	case ACC_ANY:
		return 0;
	case ACC_PEER:
		return check_peer(r);
	case ACC_ADMIN_OR_PEER:
		return *r->signature != '\0' ? check_peer(r) :
		    check_session(r, 0, page);
	case ACC_SUPER_OR_PEER:
		return *r->signature != '\0' ? check_peer(r) :
		    check_session(r, 1, page);
	case ACC_ADMIN_OR_LOCAL:
		if (is_loopback(r->remote_addr) && *r->cookie == '\0' &&
		    *r->authorization == '\0')
			return 0;
		return check_session(r, 0, page);
	case ACC_ADMIN:
	case ACC_INTERNAL:
		return check_session(r, 0, page);
	case ACC_SUPERADMIN:
		return check_session(r, 1, page);
	}
	req_error(r, 500, "unknown access class");
	return -1;
}
