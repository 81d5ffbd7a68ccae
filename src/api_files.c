/* api_files.c - file sync routes: manifest, cursor, download (via nginx), upload, apply. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "files.h"
#include "fpath.h"
#include "log.h"
#include "sbuf.h"
#include "sync.h"
#include "util.h"
#include "wake.h"

void
api_files_cfg(const struct req_ctx *c, struct files_cfg *fc)
{
	memset(fc, 0, sizeof(*fc));
	fc->root = c->conf->instance_dir;
	fc->self = c->id->node_id;
	fc->ignore = c->conf->ignore;
	fc->databases = c->conf->databases;
	fc->max_conflicts = c->conf->max_conflicts;
}

static int
answer_rc(struct req *r, enum files_rc rc, const char *err)
{
	switch (rc) {
	case FILES_EINPUT:
		return req_error(r, 400, "%s", err);
	case FILES_EPARTIAL:
		return req_error(r, 409, "%s", err);
	default:
		return req_error(r, 500, "%s", err);
	}
}

/* GET /api/sync/files/manifest?since=&limit=&scan= (peer) */
int
api_files_manifest(struct req *r)
{
	const char *since = req_param(r, "since"), *lim = req_param(r, "limit");
	const char *es;
	long long s = 0, limit = FILES_MANIFEST_MAX;
	json_object *out = NULL;
	enum files_rc rc;
	char err[512];

	if ((since != NULL && util_strtonum(since, 0, INT64_MAX, &s, &es) == -1)
	    || (lim != NULL && util_strtonum(lim, 1, FILES_MANIFEST_MAX, &limit,
	    &es) == -1))
		return req_error(r, 400, "since/limit: %s", es);
	/* The first page rescans, so a node whose worker is not running
	 * still serves what is on its disk. */
	if (req_param(r, "scan") != NULL) {
		struct files_cfg fc;
		struct files_scan_stats st;
		api_files_cfg(r->ctx, &fc);
		memset(&st, 0, sizeof(st));
		if ((rc = files_scan(r->ctx->db, &fc, &st, err,
		    sizeof(err))) != FILES_OK)
			return answer_rc(r, rc, err);
	}
	rc = files_manifest(r->ctx->db, s, (int)limit, &out, err, sizeof(err));
	if (rc != FILES_OK)
		return answer_rc(r, rc, err);
	return req_json(r, 200, out);
}

/* GET /api/sync/files/cursor (peer): how far we have pulled the caller. */
int
api_files_cursor(struct req *r)
{
	json_object *o;
	enum files_rc rc;
	char err[256];
	int64_t lseq = 0;

	rc = files_cursor(r->ctx->db, r->auth.peer_node, &lseq, err,
	    sizeof(err));
	if (rc != FILES_OK)
		return answer_rc(r, rc, err);
	o = json_object_new_object();
	json_object_object_add(o, "lseq", json_object_new_int64(lseq));
	return req_json(r, 200, o);
}

/* GET /api/sync/files/download?path= (peer): checks only; nginx sends. */
int
api_files_download(struct req *r)
{
	const char *path = req_param(r, "path");
	char err[256], esc[3 * FPATH_MAX + 1], hash[80] = "";
	sqlite3_stmt *st = NULL;
	long long size = 0;

	if (path == NULL)
		return req_error(r, 400, "missing path");
	if (fpath_check(path, err, sizeof(err)) == -1)
		return req_error(r, 400, "bad path: %s", err);
	if (fpath_ignored(path, r->ctx->conf->ignore, r->ctx->conf->databases))
		return req_error(r, 400, "path is not synced");
	/* Checked the safe way (a regular file reached without symlinks);
	 * nginx (disable_symlinks on) then serves it. */
	if (fpath_regular(r->ctx->conf->instance_dir, path, &size) == -1)
		return req_error(r, 404, "no such regular file");
	if (sqlite3_prepare_v2(r->ctx->db, "SELECT hash FROM files_index WHERE "
	    "path = ? AND deleted = 0", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			util_strlcpy(hash, (const char *)sqlite3_column_text(st,
			    0), sizeof(hash));
	}
	sqlite3_finalize(st);
	/* nginx decodes the X-Accel-Redirect URI: encode the path. */
	if (util_urlencode(esc, sizeof(esc), path, 1) == -1)
		return req_error(r, 400, "path too long");
	req_header(r, "X-Accel-Redirect: /_meshsync_files/%s", esc);
	req_header(r, "X-Meshsync-Hash: %s", hash);
	req_header(r, "X-Meshsync-Size: %lld", size);
	return req_send(r, 200, "application/octet-stream", "", 0);
}

/* POST /api/sync/files/bundle {"paths": [...]} (peer): many small files
 * in one answer (files.h, bundles); larger ones go through download. */
int
api_files_bundle(struct req *r)
{
	json_object *body = NULL, *paths = NULL;
	struct sbuf out = { 0 };
	struct files_cfg fc;
	char err[256];
	int rc;

	if (req_json_body(r, &body) == -1)
		return 0;
	api_files_cfg(r->ctx, &fc);
	if (!json_object_is_type(body, json_type_object) ||
	    !json_object_object_get_ex(body, "paths", &paths)) {
		json_object_put(body);
		return req_error(r, 400, "want {\"paths\": [...]}");
	}
	if (files_bundle_pack(&fc, paths, &out, err, sizeof(err)) == -1)
		rc = req_error(r, out.oom ? 500 : 400, "%s", err);
	else
		rc = req_send(r, 200, "application/octet-stream", out.p,
		    out.len);
	json_object_put(body);
	free(out.p);
	return rc;
}

static json_object *
stats_json(const struct files_sync_stats *st)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "entries", json_object_new_int64(st->entries));
	json_object_object_add(o, "received", json_object_new_int64(st->received));
	json_object_object_add(o, "bytes", json_object_new_int64(st->bytes));
	json_object_object_add(o, "removed", json_object_new_int64(st->removed));
	json_object_object_add(o, "conflicts", json_object_new_int64(st->conflicts));
	json_object_object_add(o, "refused", json_object_new_int64(st->refused));
	return o;
}

/* POST /api/sync/files/upload?entry=<base64url JSON> (peer): the body is
 * the file's content, in nginx's temp file. */
int
api_files_upload(struct req *r)
{
	json_object *entry = sync_b64_json(req_param(r, "entry"));
	struct files_sync_stats st;
	struct files_cfg fc;
	enum files_rc rc;
	char err[512];

	if (entry == NULL || !json_object_is_type(entry, json_type_object)) {
		json_object_put(entry);
		return req_error(r, 400, "missing or malformed entry");
	}
	if (*r->body_file == '\0') {
		json_object_put(entry);
		return req_error(r, 400, "upload body missing");
	}
	api_files_cfg(r->ctx, &fc);
	memset(&st, 0, sizeof(st));
	rc = files_install_tmp(r->ctx->db, &fc, r->body_file, entry, &st, err,
	    sizeof(err));
	json_object_put(entry);
	if (rc != FILES_OK)
		return answer_rc(r, rc, err);
	/* Pass it on to our other peers (relay), and tell the app. */
	wake_applied(r);
	return req_json(r, 200, stats_json(&st));
}

/* A fetcher for pushed manifests: content must already have been
 * uploaded; an entry whose upload failed holds the cursor there. */
static int
no_fetch(void *arg, const char *path, const char *hash, int64_t size,
    struct files_sink *out, char *err, size_t errsz)
{
	(void)arg; (void)hash; (void)size; (void)out;
	util_fmt(err, errsz, "%s: content was not uploaded", path);
	return -1;
}

/* POST /api/sync/files/apply (peer): a pushed manifest page, after its
 * contents were uploaded: tombstones, dirs, modes, and the cursor. */
int
api_files_apply(struct req *r)
{
	struct files_fetcher f = { .fetch = no_fetch };
	json_object *manifest = NULL, *o;
	struct files_sync_stats st;
	struct files_cfg fc;
	enum files_rc rc;
	char err[512];

	if (req_json_body(r, &manifest) == -1)
		return 0;
	api_files_cfg(r->ctx, &fc);
	memset(&st, 0, sizeof(st));
	rc = files_pull(r->ctx->db, &fc, r->auth.peer_node, manifest, &f, &st,
	    err, sizeof(err));
	json_object_put(manifest);
	if (rc != FILES_OK && rc != FILES_EPARTIAL)
		return answer_rc(r, rc, err);
	if (st.received + st.removed + st.dirs > 0)
		wake_applied(r);
	o = stats_json(&st);
	if (rc == FILES_EPARTIAL)
		json_object_object_add(o, "partial", json_object_new_string(err));
	return req_json(r, 200, o);
}
