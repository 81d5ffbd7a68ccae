/* session.h - browser sessions and login throttling in the state DB. */
#ifndef MESHSYNC_SESSION_H
#define MESHSYNC_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define SESSION_ID_HEX		65	/* 32 random bytes as hex + NUL */
#define SESSION_CSRF_HEX	65
#define SESSION_IDLE_S		(8 * 3600)	/* default idle expiry */
#define SESSION_MAX_S		(7 * 86400)	/* default absolute expiry */
#define SESSION_FREE_FAILURES	5	/* failures before delays start */
#define SESSION_MAX_DELAY_S	900	/* longest lockout between tries */

struct session {
	int	 user_id;
	char	 user[64];
	char	 role[16];
	char	 csrf[SESSION_CSRF_HEX];
};

/*
 * Create a session for user_id from addr.  The random id is returned in
 * id_out (for the cookie) and stored only as its SHA-256; the CSRF token
 * goes to csrf_out.  Returns 0 or -1.
 */
int	 session_create(sqlite3 *db, int user_id, const char *addr,
	    int64_t now_ms, char id_out[SESSION_ID_HEX],
	    char csrf_out[SESSION_CSRF_HEX]);

/*
 * Look a cookie's session id up.  Expired sessions (idle_s since last use,
 * or max_s since creation) are deleted and not found.  Returns 0 and fills
 * s (and refreshes last use at most once a minute), 1 when there is no
 * valid session, -1 on error.
 */
int	 session_lookup(sqlite3 *db, const char *id, int64_t now_ms,
	    int idle_s, int max_s, struct session *s);

/* End one session (logout).  Returns 0 or -1. */
int	 session_delete(sqlite3 *db, const char *id);

/*
 * Login throttling, keyed per user name and per client address.  Before
 * checking a password: session_throttled() returns the seconds the caller
 * must still wait (0: go ahead).  After: session_login_result() records a
 * failure or, on success, clears both keys.
 */
int	 session_throttled(sqlite3 *db, const char *user, const char *addr,
	    int64_t now_ms);
void	 session_login_result(sqlite3 *db, const char *user, const char *addr,
	    int ok, int64_t now_ms);

#endif
