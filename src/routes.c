/* routes.c - the one table of every HTTP route meshsync answers. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "page.h"

static const struct route route_table[] = {
	{ .method = "GET", .path = "/api/sync/ping", .access = ACC_ANY,
	  .fn = api_ping },
	{ .method = "GET", .path = "/api/sync/health", .access = ACC_ANY,
	  .fn = api_health },
	{ .method = "GET", .path = "/api/sync/status", .access = ACC_ADMIN,
	  .fn = api_status },
	{ .method = "GET", .path = "/_meshsync_events_auth",
	  .access = ACC_ADMIN, .fn = api_events_auth },
	{ .method = "POST", .path = "/api/sync/login", .access = ACC_ANY,
	  .fn = api_login },
	{ .method = "POST", .path = "/api/sync/hello", .access = ACC_PEER,
	  .fn = api_hello },
	{ .method = "GET", .path = "/api/sync/peers", .access = ACC_ADMIN,
	  .fn = api_peers_list },
	{ .method = "POST", .path = "/api/sync/peers", .access = ACC_SUPERADMIN,
	  .fn = api_peers_add },
	{ .method = "POST", .path = "/api/sync/peers/action",
	  .access = ACC_SUPERADMIN, .fn = api_peers_action },
	{ .method = "GET", .path = "/api/sync/changes", .access = ACC_PEER,
	  .fn = api_changes },
	{ .method = "GET", .path = "/api/sync/database", .access = ACC_PEER,
	  .fn = api_database },
	/* Remote update: a superadmin starts a push, or a pinned origin
	 * tells us to pull; the target fetches and reports back. */
	{ .method = "POST", .path = "/api/sync/update",
	  .access = ACC_SUPER_OR_PEER, .fn = api_update },
	{ .method = "GET", .path = "/api/sync/update/manifest",
	  .access = ACC_PEER, .fn = api_update_manifest },
	{ .method = "GET", .path = "/api/sync/update/file",
	  .access = ACC_PEER, .fn = api_update_file },
	{ .method = "POST", .path = "/api/sync/update/report",
	  .access = ACC_PEER, .fn = api_update_report },
	{ .method = "GET", .path = "/api/sync/update/status",
	  .access = ACC_ADMIN, .fn = api_update_status },
	{ .method = "POST", .path = "/sync/servers/update",
	  .access = ACC_SUPERADMIN, .page = 1, .fn = page_servers_update },
	{ .method = "POST", .path = "/api/sync/receive-changes",
	  .access = ACC_PEER, .fn = api_receive_changes },
	{ .method = "GET", .path = "/api/sync/files/manifest",
	  .access = ACC_PEER, .fn = api_files_manifest },
	{ .method = "GET", .path = "/api/sync/files/cursor",
	  .access = ACC_PEER, .fn = api_files_cursor },
	{ .method = "GET", .path = "/api/sync/files/download",
	  .access = ACC_PEER, .fn = api_files_download },
	{ .method = "POST", .path = "/api/sync/files/bundle",
	  .access = ACC_PEER, .fn = api_files_bundle },
	{ .method = "POST", .path = "/api/sync/files/upload",
	  .access = ACC_PEER, .fn = api_files_upload },
	{ .method = "POST", .path = "/api/sync/files/apply",
	  .access = ACC_PEER, .fn = api_files_apply },
	{ .method = "POST", .path = "/api/sync/data", .access = ACC_ADMIN,
	  .fn = api_data },
	{ .method = "POST", .path = "/api/sync/sync", .access = ACC_ADMIN,
	  .fn = api_sync_now },
	{ .method = "POST", .path = "/api/sync/trigger", .access = ACC_ANY,
	  .fn = api_trigger },
	{ .method = "POST", .path = "/api/sync/lock/acquire",
	  .access = ACC_ADMIN_OR_PEER, .fn = api_lock_acquire },
	{ .method = "POST", .path = "/api/sync/lock/renew",
	  .access = ACC_ADMIN_OR_PEER, .fn = api_lock_renew },
	{ .method = "POST", .path = "/api/sync/lock/release",
	  .access = ACC_ADMIN_OR_PEER, .fn = api_lock_release },
	{ .method = "GET", .path = "/api/sync/locks",
	  .access = ACC_ADMIN_OR_PEER, .fn = api_locks_list },

	/* Pages: unauthenticated visitors are sent to the login form. */
	{ .method = "GET", .path = "/sync/login", .access = ACC_ANY, .page = 1,
	  .fn = page_login },
	{ .method = "POST", .path = "/sync/login", .access = ACC_ANY, .page = 1,
	  .fn = page_login_post },
	{ .method = "POST", .path = "/sync/logout", .access = ACC_ADMIN,
	  .page = 1, .fn = page_logout },
	{ .method = "GET", .path = "/sync/dashboard", .access = ACC_ADMIN,
	  .page = 1, .fn = page_dashboard },
	{ .method = "POST", .path = "/sync/sync", .access = ACC_ADMIN,
	  .page = 1, .fn = page_sync },
	{ .method = "GET", .path = "/sync/servers", .access = ACC_SUPERADMIN,
	  .page = 1, .fn = page_servers },
	{ .method = "POST", .path = "/sync/servers/add",
	  .access = ACC_SUPERADMIN, .page = 1, .fn = page_servers_add },
	{ .method = "POST", .path = "/sync/servers/action",
	  .access = ACC_SUPERADMIN, .page = 1, .fn = page_servers_action },
	{ .method = "GET", .path = "/sync/users", .access = ACC_SUPERADMIN,
	  .page = 1, .fn = page_users },
	{ .method = "POST", .path = "/sync/users/action",
	  .access = ACC_SUPERADMIN, .page = 1, .fn = page_users_action },
	{ .method = "GET", .path = "/sync/logs", .access = ACC_ADMIN,
	  .page = 1, .fn = page_logs },
	{ .method = "GET", .path = "/sync/conflicts", .access = ACC_ADMIN,
	  .page = 1, .fn = page_conflicts },
	{ .method = "POST", .path = "/sync/conflicts/restore",
	  .access = ACC_ADMIN, .page = 1, .fn = page_conflicts_restore },
	{ .method = "GET", .path = "/sync/locks", .access = ACC_ADMIN,
	  .page = 1, .fn = page_locks },
	{ .method = "GET", .path = "/sync/config", .access = ACC_SUPERADMIN,
	  .page = 1, .fn = page_config },
	{ .method = "POST", .path = "/sync/config", .access = ACC_SUPERADMIN,
	  .page = 1, .fn = page_config_post },
};

#define NROUTES (sizeof(route_table) / sizeof(route_table[0]))

static const char *const access_names[] = {
	[ACC_ANY] = "anyone",
	[ACC_ADMIN] = "admin",
	[ACC_SUPERADMIN] = "superadmin",
	[ACC_PEER] = "peer",
	[ACC_ADMIN_OR_PEER] = "admin or peer",
	[ACC_SUPER_OR_PEER] = "superadmin or peer",
	[ACC_ADMIN_OR_LOCAL] = "admin or localhost",
	[ACC_INTERNAL] = "internal",
};

const char *
routes_access_name(enum route_access a)
{
	return access_names[a];
}

static int
path_matches(const struct route *rt, const char *path)
{
	if (rt->prefix)
		return strncmp(path, rt->path, strlen(rt->path)) == 0;
	return strcmp(path, rt->path) == 0;
}

void
routes_dispatch(struct req *r)
{
	const struct route *hit = NULL;
	char allow[128] = "";
	int path_known = 0;
	/* HEAD is answered like GET; req_send leaves out the body. */
	const char *method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;

	for (size_t i = 0; i < NROUTES; i++) {
		const struct route *rt = &route_table[i];

		if (!path_matches(rt, r->path))
			continue;
		path_known = 1;
		if (strcmp(rt->method, method) == 0) {
			hit = rt;
			break;
		}
		if (strstr(allow, rt->method) == NULL) {
			size_t l = strlen(allow);
			snprintf(allow + l, sizeof(allow) - l, "%s%s",
			    l ? ", " : "", rt->method);
		}
	}
	if (hit == NULL) {
		if (path_known) {
			req_header(r, "Allow: %s", allow);
			req_error(r, 405, "method %s not allowed here",
			    r->method);
		} else
			req_error(r, 404, "no such route");
		return;
	}
	if (auth_check(r, hit->access, hit->page) == -1)
		return;		/* auth_check has answered */
	if (hit->fn(r) == -1 && !r->responded)
		req_error(r, 500, "internal error");
	if (!r->responded)
		req_error(r, 500, "handler sent no response");
}
