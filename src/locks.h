/* locks.h - leases in the state DB: named resources held by one owner until a deadline, with fencing tokens. */
#ifndef MESHSYNC_LOCKS_H
#define MESHSYNC_LOCKS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

#define LOCKS_NAME_MAX		128	/* resource and owner, in bytes */
#define LOCKS_TTL_MAX		3600	/* seconds: a lease is stale after 1 h */
#define LOCKS_TTL_DEFAULT	LOCKS_TTL_MAX

/*
 * Every answer of the module; locks_result_str names each for messages.
 * The request layer maps them to HTTP: HELD 409, NOT_FOUND 404,
 * WRONG_OWNER and WRONG_TOKEN 403, INVALID 400, ERROR 500.
 */
enum locks_result {
	LOCKS_OK = 0,
	LOCKS_HELD,		/* another owner holds an unexpired lease */
	LOCKS_NOT_FOUND,	/* no lease (never taken, released or expired) */
	LOCKS_WRONG_OWNER,	/* the lease belongs to someone else */
	LOCKS_WRONG_TOKEN,	/* right owner, but not the current token */
	LOCKS_INVALID,		/* bad resource, owner or ttl */
	LOCKS_ERROR,		/* state DB error */
};

/* One lease.  Times are UTC milliseconds since the epoch. */
struct locks_lease {
	char	 resource[LOCKS_NAME_MAX + 1];
	char	 owner[LOCKS_NAME_MAX + 1];
	int64_t	 token;
	int64_t	 acquired_ms;		/* when this token was issued */
	int64_t	 expires_ms;
};

/* A short static phrase for r ("held by another owner"). */
const char *locks_result_str(enum locks_result r);

/*
 * Check a resource or owner name: 1..LOCKS_NAME_MAX printable ASCII
 * characters (space included).  `what` names the field in the reason.
 * Returns 0, or -1 with a reason in err.
 */
int	 locks_name_valid(const char *what, const char *name, char *err,
	    size_t errsz);

/*
 * Bring a requested ttl (seconds) into range: above LOCKS_TTL_MAX is capped
 * to it (*capped set to 1), below 1 is invalid.  Callers use
 * LOCKS_TTL_DEFAULT when none was asked for.  Returns the ttl to use, or -1
 * when invalid.
 */
long long locks_ttl_clamp(long long ttl, int *capped);

/*
 * Take the lease on `resource` for `owner` for ttl_s seconds (1..
 * LOCKS_TTL_MAX) from now_ms.  A free or expired resource gets a new
 * fencing token, one above every token ever issued for it (the per-resource
 * counter outlives releases and restarts).  Acquiring a lease the same
 * owner already holds replaces it with a new token, so the old token stops
 * being valid: an owner that crashed and came back gets the resource at once
 * and anything still running with its old token is fenced off.
 *
 * Returns LOCKS_OK with *out the new lease; LOCKS_HELD with *out the
 * current holder's lease; LOCKS_INVALID (reason in err); LOCKS_ERROR.
 * One BEGIN IMMEDIATE transaction.
 */
enum locks_result locks_acquire(sqlite3 *db, const char *resource,
	    const char *owner, long long ttl_s, int64_t now_ms,
	    struct locks_lease *out, char *err, size_t errsz);

/*
 * Extend the caller's lease to now_ms + ttl_s, keeping its token.  owner
 * and token must match the current, unexpired lease.  Returns LOCKS_OK
 * (*out the renewed lease), LOCKS_NOT_FOUND, LOCKS_WRONG_OWNER,
 * LOCKS_WRONG_TOKEN (for the last two *out is the current lease),
 * LOCKS_INVALID or LOCKS_ERROR.
 */
enum locks_result locks_renew(sqlite3 *db, const char *resource,
	    const char *owner, int64_t token, long long ttl_s, int64_t now_ms,
	    struct locks_lease *out, char *err, size_t errsz);

/*
 * Give up a lease.  owner must match; token, when > 0, must match too
 * (0: any token of that owner).  The token counter is kept.  Returns
 * LOCKS_OK (*out the released lease), LOCKS_NOT_FOUND, LOCKS_WRONG_OWNER,
 * LOCKS_WRONG_TOKEN, LOCKS_INVALID or LOCKS_ERROR.
 */
enum locks_result locks_release(sqlite3 *db, const char *resource,
	    const char *owner, int64_t token, int64_t now_ms,
	    struct locks_lease *out, char *err, size_t errsz);

/*
 * Delete every lease expired at now_ms.  Returns how many, or -1.
 */
int	 locks_reap(sqlite3 *db, int64_t now_ms);

/*
 * Reap expired leases, then return the live ones as a JSON array of
 * {resource, owner, token, acquired, expires, expires_in_ms}, by resource
 * (RFC 3339 UTC times).  *reaped (may be NULL) gets the number reaped.
 * Returns a new array the caller puts, or NULL on error.
 */
json_object *locks_list(sqlite3 *db, int64_t now_ms, int *reaped);

/*
 * For an apply path fenced by a lease: is `token` the current, unexpired
 * token of `resource` at now_ms?  Returns 1 yes, 0 no, -1 on error.
 */
int	 locks_check(sqlite3 *db, const char *resource, int64_t token,
	    int64_t now_ms);

#endif
