/* api_update.c - remote update routes: start a push or accept one, serve the release (manifest; files via nginx), take reports, status. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "fpath.h"
#include "peers.h"
#include "update.h"
#include "updaterun.h"
#include "util.h"

static int
answer(struct req *r, int rc, const char *err)
{
	switch (rc) {
	case UPDATERUN_ENOTFOUND:
		return req_error(r, 404, "%s", err);
	case UPDATERUN_ECONFLICT:
		return req_error(r, 409, "%s", err);
	case UPDATERUN_EINPUT:
		return req_error(r, 400, "%s", err);
	default:
		return req_error(r, 500, "%s", err);
	}
}

/*
 * POST /api/sync/update (superadmin or peer).  From a superadmin
 * (session or bearer): {"peer": NAME|"all"} pushes this node's app_dir.
 * From a signed peer: that peer is the origin asking us to pull its
 * release {"update", "release", "manifest_hash"}; we answer 202 at once
 * and a detached process does the work.
 */
int
api_update(struct req *r)
{
	json_object *body = NULL, *out = NULL, *v;
	char err[1024];
	int rc;

	if (req_json_body(r, &body) == -1)
		return 0;
	if (!json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		return req_error(r, 400, "JSON object expected");
	}
	if (r->auth.peer_id != 0) {
		struct peer origin;
		if (peers_by_node(r->ctx->db, r->auth.peer_node, &origin) != 0) {
			json_object_put(body);
			return req_error(r, 500, "state DB error");
		}
		rc = updaterun_accept(r->ctx->db, r->ctx->conf, &origin, body,
		    err, sizeof(err));
		json_object_put(body);
		if (rc != UPDATERUN_OK)
			return answer(r, rc, err);
		out = json_object_new_object();
		json_object_object_add(out, "accepted",
		    json_object_new_boolean(1));
		return req_json(r, 202, out);
	}
	if (!json_object_object_get_ex(body, "peer", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    *json_object_get_string(v) == '\0') {
		json_object_put(body);
		return req_error(r, 400, "want {\"peer\": NAME or \"all\"}");
	}
	rc = updaterun_push(r->ctx->db, r->ctx->conf, r->ctx->id,
	    json_object_get_string(v), r->auth.user, &out, err, sizeof(err));
	json_object_put(body);
	if (rc == UPDATERUN_ECONFLICT && out != NULL) {
		/* The one target asked for cannot take it: say why, plainly. */
		json_object_object_add(out, "error", json_object_new_string(err));
		return req_json(r, 409, out);
	}
	if (rc != UPDATERUN_OK)
		return answer(r, rc, err);
	return req_json(r, 202, out);
}

/* Is `release` one this node sent to the calling peer? */
static int
release_for_caller(struct req *r, const char *release)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;

	if (release == NULL || strlen(release) != 32)
		return 0;
	if (sqlite3_prepare_v2(r->ctx->db, "SELECT 1 FROM updates WHERE "
	    "role = 'origin' AND release = ? AND peer_node = ?", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, release, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->auth.peer_node, -1, SQLITE_STATIC);
		ok = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return ok;
}

/* GET /api/sync/update/manifest?release= (peer): the stored text, as
 * hashed when announced; the answer is signed like every peer answer. */
int
api_update_manifest(struct req *r)
{
	const char *release = req_param(r, "release");
	sqlite3_stmt *st = NULL;
	int rc;

	if (!release_for_caller(r, release))
		return req_error(r, 404, "no such release for you");
	if (sqlite3_prepare_v2(r->ctx->db, "SELECT manifest FROM "
	    "update_releases WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return req_error(r, 500, "state DB error");
	sqlite3_bind_text(st, 1, release, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return req_error(r, 404, "release %s is no longer kept", release);
	}
	rc = req_send(r, 200, "application/json", (const char *)
	    sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
	sqlite3_finalize(st);
	return rc;
}

/*
 * GET /api/sync/update/file?release=&path= (peer): only a file listed in a
 * release sent to the caller, reached inside app_dir without symlinks;
 * nginx sends the bytes from its internal /_meshsync_app/ location.
 */
int
api_update_file(struct req *r)
{
	const char *release = req_param(r, "release"), *path = req_param(r,
	    "path");
	char err[128], esc[3 * FPATH_MAX + 1];
	sqlite3_stmt *st = NULL;
	int listed = 0;

	if (path == NULL || fpath_check(path, err, sizeof(err)) == -1)
		return req_error(r, 400, "bad path: %s", path ? err : "missing");
	if (!release_for_caller(r, release))
		return req_error(r, 404, "no such release for you");
	if (sqlite3_prepare_v2(r->ctx->db, "SELECT 1 FROM update_release_files "
	    "WHERE release = ? AND path = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, release, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
		listed = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	if (!listed)
		return req_error(r, 404, "not a file of this release");
	if (fpath_regular(r->ctx->conf->app_dir, path, NULL) == -1)
		return req_error(r, 404, "no such regular file");
	if (util_urlencode(esc, sizeof(esc), path, 1) == -1)
		return req_error(r, 400, "path too long");
	req_header(r, "X-Accel-Redirect: /_meshsync_app/%s", esc);
	return req_send(r, 200, "application/octet-stream", "", 0);
}

/* POST /api/sync/update/report (peer): a target's progress. */
int
api_update_report(struct req *r)
{
	json_object *body = NULL, *o;
	char err[256];
	int rc;

	if (req_json_body(r, &body) == -1)
		return 0;
	rc = updaterun_report_in(r->ctx->db, r->ctx->conf, r->auth.peer_node,
	    body, err, sizeof(err));
	json_object_put(body);
	if (rc != UPDATERUN_OK)
		return answer(r, rc, err);
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return req_json(r, 200, o);
}

/* GET /api/sync/update/status (admin): updates sent and received,
 * backups, whether a swap is half-done. */
int
api_update_status(struct req *r)
{
	return req_json(r, 200, updaterun_status(r->ctx->db, r->ctx->conf, 50));
}
