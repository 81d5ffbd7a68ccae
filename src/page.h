/* page.h - server-rendered dashboard pages: the shared page frame and the page handlers. */
#ifndef MESHSYNC_PAGE_H
#define MESHSYNC_PAGE_H

#include <json-c/json.h>

#include "req.h"

/*
 * Render templates/NAME.html inside templates/layout.html and send it.
 * ctx (ownership passes in; may be NULL) gets the common fields added:
 * node name, the user and role, the CSRF token, `title`, `is_super`.
 */
int	 page_send(struct req *r, int status, const char *name,
	    const char *title, json_object *ctx);

/*
 * Times for people: ms since the epoch, or a stored UTC RFC 3339 string,
 * as the node's local time with the zone named ("2026-11-21 23:29:17
 * EST"); UTC when the zone is unusable, an unparsable string as it is.
 */
void	 page_time_ms(const struct conf *c, int64_t ms, char *buf,
	    size_t bufsz);
void	 page_time(const struct conf *c, const char *utc, char *buf,
	    size_t bufsz);

/* Set a cookie (SameSite=Strict, HttpOnly, Path=/, Secure over https).
 * max_age 0 deletes it. */
void	 page_cookie(struct req *r, const char *name, const char *value,
	    long max_age);

/* page_auth.c */
int	 page_login(struct req *);
int	 page_login_post(struct req *);
int	 page_logout(struct req *);
int	 api_login(struct req *);

/* page_admin.c */
int	 page_dashboard(struct req *);
int	 page_sync(struct req *);
int	 page_servers(struct req *);
int	 page_servers_add(struct req *);
int	 page_servers_action(struct req *);
int	 page_servers_update(struct req *);
int	 page_users(struct req *);
int	 page_users_action(struct req *);

/* page_more.c */
int	 page_logs(struct req *);
int	 page_conflicts(struct req *);
int	 page_conflicts_restore(struct req *);
int	 page_locks(struct req *);
int	 page_config(struct req *);
int	 page_config_post(struct req *);

#endif
