/* routes.h - the route table: method + path -> access class -> handler. */
#ifndef MESHSYNC_ROUTES_H
#define MESHSYNC_ROUTES_H

#include "req.h"

/* Who may call a route; checked once, in routes_dispatch, never in handlers. */
enum route_access {
	ACC_ANY = 0,		/* ping, health, login */
	ACC_ADMIN,		/* admin or superadmin session */
	ACC_SUPERADMIN,		/* superadmin session */
	ACC_PEER,		/* signed request from a pinned, enabled peer */
	ACC_ADMIN_OR_PEER,
	ACC_SUPER_OR_PEER,
	ACC_ADMIN_OR_LOCAL,	/* admin session or a loopback client */
	ACC_INTERNAL,		/* only nginx sub-requests (nchan auth) */
};

struct route {
	const char		*method;	/* "GET", "POST" */
	const char		*path;
	int			 prefix;	/* path is a prefix ("/x/") */
	enum route_access	 access;
	int			 page;		/* HTML: redirect to login, not 401 */
	int			(*fn)(struct req *);
};

/* Route one request: 404/405 JSON for unknown paths and methods, the access
 * check, then the handler.  Always leaves a response sent. */
void	 routes_dispatch(struct req *r);

/* The access-class name for logs ("admin", "peer"...). */
const char *routes_access_name(enum route_access);

#endif
