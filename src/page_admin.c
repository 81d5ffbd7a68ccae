/* page_admin.c - dashboard, servers and users pages, and their form actions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "page.h"
#include "peer.h"
#include "peers.h"
#include "syncrun.h"
#include "updaterun.h"
#include "users.h"
#include "util.h"
#include "wake.h"

static json_object *
recent_events(const struct conf *c, sqlite3 *db, int limit)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, "SELECT time, level, kind, peer, message "
	    "FROM events ORDER BY id DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK)
		return arr;
	sqlite3_bind_int(st, 1, limit);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *e = json_object_new_object();
		for (int i = 0; i < 5; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			char local[64];
			if (i == 0) {	/* shown in the node's zone */
				page_time(c, v, local, sizeof(local));
				v = local;
			}
			json_object_object_add(e, sqlite3_column_name(st, i),
			    json_object_new_string(v ? v : ""));
		}
		json_object_array_add(arr, e);
	}
	sqlite3_finalize(st);
	return arr;
}

/* The peer list plus has_peers, since templates cannot test an array's
 * length. */
static void
add_peers(json_object *ctx, const struct conf *c, sqlite3 *db)
{
	json_object *peers = peers_list(db);

	for (size_t i = 0; peers != NULL && i < json_object_array_length(peers);
	    i++) {
		json_object *p = json_object_array_get_idx(peers, i), *v;
		char local[64];
		if (json_object_object_get_ex(p, "last_ok", &v) && v != NULL) {
			page_time(c, json_object_get_string(v), local,
			    sizeof(local));
			json_object_object_add(p, "last_ok",
			    json_object_new_string(local));
		}
	}

	json_object_object_add(ctx, "has_peers", json_object_new_boolean(
	    peers != NULL && json_object_array_length(peers) > 0));
	json_object_object_add(ctx, "peers", peers);
}

static int
dashboard(struct req *r, const char *notice, const char *error)
{
	json_object *ctx = json_object_new_object();
	char fp[64];

	if (notice != NULL)
		json_object_object_add(ctx, "notice", json_object_new_string(notice));
	if (error != NULL)
		json_object_object_add(ctx, "error", json_object_new_string(error));
	keys_fingerprint(fp, sizeof(fp), r->ctx->id->pk);
	json_object_object_add(ctx, "fingerprint", json_object_new_string(fp));
	json_object_object_add(ctx, "public_url",
	    json_object_new_string(r->ctx->conf->public_url));
	add_peers(ctx, r->ctx->conf, r->ctx->db);
	json_object_object_add(ctx, "events", recent_events(r->ctx->conf, r->ctx->db, 20));
	return page_send(r, 200, "dashboard", "Dashboard", ctx);
}

int
page_dashboard(struct req *r)
{
	return dashboard(r, NULL, NULL);
}

/* POST /sync/sync (admin): the no-JavaScript "Sync now" / "Sync all". */
int
page_sync(struct req *r)
{
	const char *peer = req_param(r, "peer");
	json_object *res, *arr, *v;
	char msg[1024] = "", line[300];
	int failed;

	res = syncrun_all(r->ctx->db, r->ctx->conf, r->ctx->id,
	    peer && *peer ? peer : NULL);
	if (res == NULL)
		return dashboard(r, NULL, "No such server.");
	json_object_object_get_ex(res, "peers", &arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *p = json_object_array_get_idx(arr, i), *n, *e;
		json_object_object_get_ex(p, "peer", &n);
		if (json_object_object_get_ex(p, "error", &e))
			snprintf(line, sizeof(line), "%s: failed: %s. ",
			    json_object_get_string(n), json_object_get_string(e));
		else {
			json_object_object_get_ex(p, "summary", &e);
			snprintf(line, sizeof(line), "%s: %s. ",
			    json_object_get_string(n), json_object_get_string(e));
		}
		util_fmt(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s",
		    line);
	}
	json_object_object_get_ex(res, "failed", &v);
	failed = json_object_get_int(v);
	json_object_put(res);
	if (*msg == '\0')
		return dashboard(r, NULL, "No enabled servers to sync with.");
	return failed ? dashboard(r, NULL, msg) : dashboard(r, msg, NULL);
}

/* The remote-update section: this node's app_dir and, per server, the
 * state of the last update pushed to it. */
static void
add_updates(json_object *ctx, struct req *r)
{
	json_object *latest = updaterun_latest_by_peer(r->ctx->db);
	json_object *arr = json_object_new_array();

	json_object_object_add(ctx, "app_dir",
	    json_object_new_string(r->ctx->conf->app_dir));
	json_object_object_foreach(latest, name, row) {
		json_object *u = json_object_new_object(), *v;
		const char *state;
		json_object_object_get_ex(row, "state", &v);
		state = json_object_get_string(v);
		json_object_object_add(u, "peer", json_object_new_string(name));
		json_object_object_add(u, "state", json_object_new_string(state));
		json_object_object_add(u, "badge", json_object_new_string(
		    strcmp(state, "healthy") == 0 || strcmp(state, "done") == 0 ?
		    "ok" : updaterun_state_final(state) ? "warn" : "off"));
		json_object_object_get_ex(row, "detail", &v);
		json_object_object_add(u, "detail", json_object_get(v));
		json_object_object_get_ex(row, "updated", &v);
		json_object_object_add(u, "updated", json_object_get(v));
		json_object_array_add(arr, u);
	}
	json_object_put(latest);
	json_object_object_add(ctx, "has_updates", json_object_new_boolean(
	    json_object_array_length(arr) > 0));
	json_object_object_add(ctx, "updates", arr);
}

static int
servers_page(struct req *r, int status, const char *error, const char *notice,
    json_object *preview)
{
	json_object *ctx = json_object_new_object();

	add_peers(ctx, r->ctx->conf, r->ctx->db);
	if (error != NULL)
		json_object_object_add(ctx, "error", json_object_new_string(error));
	if (notice != NULL)
		json_object_object_add(ctx, "notice", json_object_new_string(notice));
	if (preview != NULL)
		json_object_object_add(ctx, "preview", preview);
	add_updates(ctx, r);
	return page_send(r, status, "servers", "Servers", ctx);
}

int
page_servers(struct req *r)
{
	return servers_page(r, 200, NULL, NULL, NULL);
}

/*
 * Adding a server is two steps, as the user asked ("by IP or domain"):
 * the address is pinged and its identity shown; the superadmin confirms,
 * and only the key that was shown gets pinned.
 */
int
page_servers_add(struct req *r)
{
	const char *addr = req_param(r, "address"), *name = req_param(r, "name");
	const char *key = req_param(r, "public_key");
	char err[512], norm[PEERS_URL_MAX], fp[64], msg[640];
	json_object *ping = NULL, *pv, *v;
	struct peer p;

	if (addr == NULL || *addr == '\0')
		return servers_page(r, 400, "Enter the other server's address "
		    "(IP or domain, optionally with :port).", NULL, NULL);
	if (key == NULL || *key == '\0') {
		if (peers_normalize_url(addr, norm, sizeof(norm), err,
		    sizeof(err)) == -1 || peer_ping(norm, &ping, err,
		    sizeof(err)) == -1)
			return servers_page(r, 400, err, NULL, NULL);
		pv = json_object_new_object();
		json_object_object_add(pv, "address", json_object_new_string(norm));
		json_object_object_get_ex(ping, "name", &v);
		json_object_object_add(pv, "name", json_object_get(v));
		json_object_object_get_ex(ping, "node_id", &v);
		json_object_object_add(pv, "node_id", json_object_get(v));
		json_object_object_get_ex(ping, "public_key", &v);
		json_object_object_add(pv, "public_key", json_object_get(v));
		keys_fingerprint(fp, sizeof(fp), json_object_get_string(v));
		json_object_object_add(pv, "fingerprint", json_object_new_string(fp));
		json_object_put(ping);
		return servers_page(r, 200, NULL, NULL, pv);
	}
	if (peer_add_url(r->ctx->db, r->ctx->id, addr, name, key, &p, err,
	    sizeof(err)) == -1)
		return servers_page(r, 400, err, NULL, NULL);
	wake_send(r->ctx->conf, "peers");
	if (p.they_know_us)
		util_fmt(msg, sizeof(msg), "%s added and connected.", p.name);
	else
		util_fmt(msg, sizeof(msg), "%s added. Now add this server (%s) "
		    "on %s too: the pair connects when both sides have added "
		    "each other.", p.name, r->ctx->conf->public_url, p.name);
	return servers_page(r, 200, NULL, msg, NULL);
}

/* POST /sync/servers/action: id + op (enable, disable, remove, repin, check). */
int
page_servers_action(struct req *r)
{
	const char *id = req_param(r, "id"), *op = req_param(r, "op");
	char err[512], msg[600], fp[64];
	struct peer p;

	if (id == NULL || op == NULL || peers_find(r->ctx->db, id, &p) != 0)
		return servers_page(r, 404, "No such server.", NULL, NULL);
	if (strcmp(op, "enable") == 0 || strcmp(op, "disable") == 0) {
		peers_set_enabled(r->ctx->db, p.id, op[0] == 'e');
		util_fmt(msg, sizeof(msg), "%s %sd.", p.name, op);
	} else if (strcmp(op, "remove") == 0) {
		peers_remove(r->ctx->db, p.id);
		store_event(r->ctx->db, "info", "peer", p.name, "peer removed");
		util_fmt(msg, sizeof(msg), "%s removed.", p.name);
	} else if (strcmp(op, "repin") == 0) {
		if (peer_repin(r->ctx->db, &p, fp, sizeof(fp), err,
		    sizeof(err)) == -1)
			return servers_page(r, 400, err, NULL, NULL);
		util_fmt(msg, sizeof(msg), "New key of %s pinned (%s).", p.name,
		    fp);
	} else if (strcmp(op, "check") == 0) {
		int rc = peer_hello(r->ctx->db, r->ctx->id, &p, err, sizeof(err));
		if (rc != 1)
			return servers_page(r, 200, err, NULL, NULL);
		util_fmt(msg, sizeof(msg), "%s is connected both ways.", p.name);
	} else
		return servers_page(r, 400, "Unknown action.", NULL, NULL);
	return servers_page(r, 200, NULL, msg, NULL);
}

static int
users_page(struct req *r, int status, const char *error, const char *notice)
{
	json_object *ctx = json_object_new_object();

	json_object_object_add(ctx, "users", users_list(r->ctx->db));
	if (error != NULL)
		json_object_object_add(ctx, "error", json_object_new_string(error));
	if (notice != NULL)
		json_object_object_add(ctx, "notice", json_object_new_string(notice));
	return page_send(r, status, "users", "Users", ctx);
}

int
page_users(struct req *r)
{
	return users_page(r, 200, NULL, NULL);
}

/* POST /sync/users/action: op add (name, role, password), passwd, del. */
int
page_users_action(struct req *r)
{
	const char *op = req_param(r, "op"), *name = req_param(r, "name");
	const char *pw = req_param(r, "password"), *role = req_param(r, "role");
	char err[256], msg[256];

	if (op == NULL || name == NULL)
		return users_page(r, 400, "Missing fields.", NULL);
	if (strcmp(op, "add") == 0) {
		if (users_add(r->ctx->db, name, role ? role : "", pw ? pw : "",
		    err, sizeof(err)) == -1)
			return users_page(r, 400, err, NULL);
		util_fmt(msg, sizeof(msg), "User %s added.", name);
	} else if (strcmp(op, "passwd") == 0) {
		if (users_passwd(r->ctx->db, name, pw ? pw : "", err,
		    sizeof(err)) == -1)
			return users_page(r, 400, err, NULL);
		util_fmt(msg, sizeof(msg), "Password of %s changed; their "
		    "other sessions have ended.", name);
	} else if (strcmp(op, "del") == 0) {
		if (users_del(r->ctx->db, name, err, sizeof(err)) == -1)
			return users_page(r, 400, err, NULL);
		util_fmt(msg, sizeof(msg), "User %s deleted.", name);
	} else
		return users_page(r, 400, "Unknown action.", NULL);
	return users_page(r, 200, NULL, msg);
}

/* POST /sync/servers/update: peer (a name or "all") gets this node's
 * app_dir; progress then shows in the Remote update section. */
int
page_servers_update(struct req *r)
{
	const char *peer = req_param(r, "peer");
	json_object *out = NULL, *arr;
	char err[1024], msg[1536] = "";
	int rc;

	if (peer == NULL || *peer == '\0')
		return servers_page(r, 400, "Choose a server to update.", NULL,
		    NULL);
	rc = updaterun_push(r->ctx->db, r->ctx->conf, r->ctx->id, peer,
	    r->auth.user, &out, err, sizeof(err));
	if (out == NULL)
		return servers_page(r, rc == UPDATERUN_EINTERNAL ? 500 : 400,
		    err, NULL, NULL);
	json_object_object_get_ex(out, "peers", &arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *p = json_object_array_get_idx(arr, i), *n, *e;
		size_t l = strlen(msg);
		json_object_object_get_ex(p, "peer", &n);
		if (json_object_object_get_ex(p, "error", &e))
			util_fmt(msg + l, sizeof(msg) - l, "%s: %s ",
			    json_object_get_string(n), json_object_get_string(e));
		else
			util_fmt(msg + l, sizeof(msg) - l, "%s: update started. ",
			    json_object_get_string(n));
	}
	json_object_put(out);
	return rc == UPDATERUN_OK ? servers_page(r, 200, NULL, msg, NULL) :
	    servers_page(r, 409, msg, NULL, NULL);
}
