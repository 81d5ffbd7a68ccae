/* api_locks.c - leases over HTTP: acquire, renew, release and list (admin or peer). */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "locks.h"
#include "log.h"
#include "tm.h"
#include "util.h"

/* The body fields of the lease routes, each checked by type here before a
 * handler sees it; which are needed or allowed is per route. */
enum lock_field {
	LF_RESOURCE = 1 << 0,
	LF_OWNER = 1 << 1,
	LF_TTL = 1 << 2,
	LF_TOKEN = 1 << 3,
};

static const struct {
	const char	*key;
	enum lock_field	 bit;
	json_type	 type;
} lock_fields[] = {
	{ .key = "resource", .bit = LF_RESOURCE, .type = json_type_string },
	{ .key = "owner", .bit = LF_OWNER, .type = json_type_string },
	{ .key = "ttl", .bit = LF_TTL, .type = json_type_int },
	{ .key = "token", .bit = LF_TOKEN, .type = json_type_int },
};

struct lock_input {
	json_object	*body;		/* owns the strings below */
	const char	*resource;
	const char	*owner;
	long long	 ttl;		/* LOCKS_TTL_DEFAULT when absent */
	int		 ttl_capped;
	int64_t		 token;		/* 0 when absent */
};

/*
 * Parse and check the JSON body: every field in `need` present, each known
 * field of the right type, names and numbers in range.  Returns 0 with in
 * filled (the caller puts in->body), or -1 after answering 400.
 */
static int
lock_input(struct req *r, unsigned need, struct lock_input *in)
{
	json_object *v;
	char err[128];

	memset(in, 0, sizeof(*in));
	in->ttl = LOCKS_TTL_DEFAULT;
	if (req_json_body(r, &in->body) == -1)
		return -1;
	if (!json_object_is_type(in->body, json_type_object)) {
		util_fmt(err, sizeof(err), "want a JSON object");
		goto bad;
	}
	for (size_t i = 0; i < sizeof(lock_fields) / sizeof(lock_fields[0]);
	    i++) {
		if (!json_object_object_get_ex(in->body, lock_fields[i].key, &v) ||
		    v == NULL) {
			if (need & lock_fields[i].bit) {
				util_fmt(err, sizeof(err), "missing %s",
				    lock_fields[i].key);
				goto bad;
			}
			continue;
		}
		if (!json_object_is_type(v, lock_fields[i].type)) {
			util_fmt(err, sizeof(err), "%s must be %s",
			    lock_fields[i].key, lock_fields[i].type ==
			    json_type_string ? "a string" : "an integer");
			goto bad;
		}
		/* "\u0000" decodes to a NUL that would cut a name short. */
		if (lock_fields[i].type == json_type_string &&
		    strlen(json_object_get_string(v)) !=
		    (size_t)json_object_get_string_len(v)) {
			util_fmt(err, sizeof(err), "NUL byte in %s",
			    lock_fields[i].key);
			goto bad;
		}
		switch (lock_fields[i].bit) {
		case LF_RESOURCE:
			in->resource = json_object_get_string(v);
			if (locks_name_valid("resource", in->resource, err,
			    sizeof(err)) == -1)
				goto bad;
			break;
		case LF_OWNER:
			in->owner = json_object_get_string(v);
			if (locks_name_valid("owner", in->owner, err,
			    sizeof(err)) == -1)
				goto bad;
			break;
		case LF_TTL:
			/* json-c saturates out-of-range integers, so a
			 * huge ttl is capped like any other too large one. */
			in->ttl = locks_ttl_clamp(json_object_get_int64(v),
			    &in->ttl_capped);
			if (in->ttl == -1) {
				util_fmt(err, sizeof(err), "ttl must be 1..%d "
				    "seconds", LOCKS_TTL_MAX);
				goto bad;
			}
			break;
		case LF_TOKEN:
			in->token = json_object_get_int64(v);
			if (in->token < 1) {
				util_fmt(err, sizeof(err), "token must be a "
				    "positive integer");
				goto bad;
			}
			break;
		}
	}
	return 0;
bad:
	json_object_put(in->body);
	in->body = NULL;
	req_error(r, 400, "%s", err);
	return -1;
}

/* Who asked, for the log: the user or the peer. */
static const char *
caller(const struct req *r)
{
	if (r->auth.peer_id != 0)
		return r->auth.peer_name;
	return r->auth.user;
}

/* The lease as an answer object; NULL when out of memory. */
static json_object *
lease_json(const struct locks_lease *l, long long ttl, int capped)
{
	char acq[TM_RFC3339_LEN], until[TM_RFC3339_LEN];
	json_object *o = json_object_new_object();

	if (o == NULL)
		return NULL;
	tm_rfc3339(acq, sizeof(acq), l->acquired_ms);
	tm_rfc3339(until, sizeof(until), l->expires_ms);
	json_object_object_add(o, "resource", json_object_new_string(l->resource));
	json_object_object_add(o, "owner", json_object_new_string(l->owner));
	json_object_object_add(o, "token", json_object_new_int64(l->token));
	json_object_object_add(o, "acquired", json_object_new_string(acq));
	json_object_object_add(o, "expires", json_object_new_string(until));
	if (ttl > 0) {
		json_object_object_add(o, "ttl", json_object_new_int64(ttl));
		json_object_object_add(o, "capped",
		    json_object_new_boolean(capped));
	}
	return o;
}

/*
 * Answer a refusal that names the current holder: {"error", "holder",
 * "expires"}.  Like req_error, but with the two extra fields a client needs
 * to decide when to try again; logged the same way.
 */
static int
refuse_held(struct req *r, int status, const char *why,
    const struct locks_lease *cur)
{
	char until[TM_RFC3339_LEN], msg[512], s1[160], s2[160];
	json_object *o;

	tm_rfc3339(until, sizeof(until), cur->expires_ms);
	util_fmt(msg, sizeof(msg), "%s: %s is held by %s until %s", why,
	    cur->resource, cur->owner, until);
	log_warnx("%s %s from %s: %d lease %s held by %s", r->method, r->path,
	    r->remote_addr, status, log_scrub(s1, sizeof(s1), cur->resource),
	    log_scrub(s2, sizeof(s2), cur->owner));
	if ((o = json_object_new_object()) == NULL)
		return req_error(r, 500, "out of memory");
	json_object_object_add(o, "error", json_object_new_string(msg));
	json_object_object_add(o, "holder", json_object_new_string(cur->owner));
	json_object_object_add(o, "expires", json_object_new_string(until));
	return req_json(r, status, o);
}

/* Map a refusal of renew/release to its answer. */
static int
answer_refusal(struct req *r, enum locks_result res,
    const struct lock_input *in, const struct locks_lease *cur,
    const char *err)
{
	switch (res) {
	case LOCKS_NOT_FOUND:
		return req_error(r, 404, "no lease on %s (never taken, "
		    "released or expired)", in->resource);
	case LOCKS_WRONG_OWNER:
		return refuse_held(r, 403, "not the owner", cur);
	case LOCKS_WRONG_TOKEN:
		return req_error(r, 403, "token %lld is not the current token "
		    "of %s (the lease was taken again)", (long long)in->token,
		    in->resource);
	case LOCKS_INVALID:
		return req_error(r, 400, "%s", err);
	default:
		return req_error(r, 500, "%s", err);
	}
}

/* POST /api/sync/lock/acquire {"resource", "owner", "ttl"?} */
int
api_lock_acquire(struct req *r)
{
	struct lock_input in;
	struct locks_lease l;
	enum locks_result res;
	char err[256], s1[160], s2[160];
	int rc;

	if (lock_input(r, LF_RESOURCE | LF_OWNER, &in) == -1)
		return 0;
	res = locks_acquire(r->ctx->db, in.resource, in.owner, in.ttl,
	    tm_now_ms(), &l, err, sizeof(err));
	switch (res) {
	case LOCKS_OK:
		log_info("lease %s taken by %s for %llds: token %lld (%s)",
		    log_scrub(s1, sizeof(s1), l.resource),
		    log_scrub(s2, sizeof(s2), l.owner), in.ttl,
		    (long long)l.token, caller(r));
		rc = req_json(r, 200, lease_json(&l, in.ttl, in.ttl_capped));
		break;
	case LOCKS_HELD:
		rc = refuse_held(r, 409, "lease taken", &l);
		break;
	case LOCKS_INVALID:
		rc = req_error(r, 400, "%s", err);
		break;
	default:
		rc = req_error(r, 500, "%s", err);
		break;
	}
	json_object_put(in.body);
	return rc;
}

/* POST /api/sync/lock/renew {"resource", "owner", "token", "ttl"?} */
int
api_lock_renew(struct req *r)
{
	struct lock_input in;
	struct locks_lease l;
	enum locks_result res;
	char err[256];
	int rc;

	if (lock_input(r, LF_RESOURCE | LF_OWNER | LF_TOKEN, &in) == -1)
		return 0;
	res = locks_renew(r->ctx->db, in.resource, in.owner, in.token, in.ttl,
	    tm_now_ms(), &l, err, sizeof(err));
	if (res == LOCKS_OK)
		rc = req_json(r, 200, lease_json(&l, in.ttl, in.ttl_capped));
	else
		rc = answer_refusal(r, res, &in, &l, err);
	json_object_put(in.body);
	return rc;
}

/* POST /api/sync/lock/release {"resource", "owner", "token"?} */
int
api_lock_release(struct req *r)
{
	struct lock_input in;
	struct locks_lease l;
	enum locks_result res;
	json_object *o;
	char err[256], s1[160], s2[160];
	int rc;

	if (lock_input(r, LF_RESOURCE | LF_OWNER, &in) == -1)
		return 0;
	res = locks_release(r->ctx->db, in.resource, in.owner, in.token,
	    tm_now_ms(), &l, err, sizeof(err));
	if (res == LOCKS_OK) {
		log_info("lease %s released by %s: token %lld (%s)",
		    log_scrub(s1, sizeof(s1), l.resource),
		    log_scrub(s2, sizeof(s2), l.owner), (long long)l.token,
		    caller(r));
		if ((o = lease_json(&l, 0, 0)) != NULL)
			json_object_object_add(o, "released",
			    json_object_new_boolean(1));
		rc = req_json(r, 200, o);
	} else
		rc = answer_refusal(r, res, &in, &l, err);
	json_object_put(in.body);
	return rc;
}

/* GET /api/sync/locks: the live leases, after reaping expired ones. */
int
api_locks_list(struct req *r)
{
	char now[TM_RFC3339_LEN];
	int64_t now_ms = tm_now_ms();
	json_object *arr, *o;
	int reaped;

	if ((arr = locks_list(r->ctx->db, now_ms, &reaped)) == NULL)
		return req_error(r, 500, "state DB error");
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(arr);
		return req_error(r, 500, "out of memory");
	}
	json_object_object_add(o, "now", json_object_new_string(
	    tm_rfc3339(now, sizeof(now), now_ms)));
	json_object_object_add(o, "locks", arr);
	json_object_object_add(o, "reaped", json_object_new_int(reaped));
	return req_json(r, 200, o);
}
