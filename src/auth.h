/* auth.h - who is asking: sessions, roles, CSRF and signed peer requests. */
#ifndef MESHSYNC_AUTH_H
#define MESHSYNC_AUTH_H

#include "req.h"
#include "routes.h"

/*
 * Decide whether r may use a route of class `access`, filling r->auth.
 * Returns 0 to go on to the handler, or -1 after answering: 401 JSON (or a
 * redirect to the login page for pages) when nobody is authenticated, 403
 * for the wrong role or a missing CSRF token.
 */
int	 auth_check(struct req *r, enum route_access access, int page);

#endif
