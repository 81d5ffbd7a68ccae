/* api_sync.c - the database changes feed and apply, offline clients, sync now, trigger. */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dbsync.h"
#include "hlc.h"
#include "events.h"
#include "log.h"
#include "node.h"
#include "syncrun.h"
#include "tm.h"
#include "util.h"
#include "wake.h"

#define TRIGGER_COOLDOWN_MS	5000
#define RECEIVE_LEASE_WAIT_MS	3000
#define RECEIVE_EARLY_WAIT_MS	2000

void
wake_applied(struct req *r)
{
	json_object *ev = json_object_new_object();

	/* Naming the sender lets the worker relay to everyone but it. */
	wake_applied_from(r->ctx->conf, r->auth.peer_node);
	/* Open dashboards show what arrived. */
	json_object_object_add(ev, "peer", json_object_new_string(r->auth.peer_name));
	events_publish(r->ctx->conf, r->ctx->db, "received", ev);
}

/* Open the application DB a request names (?db=), or answer 404. */
static sqlite3 *
open_db(struct req *r, const char **name_out)
{
	const char *name = req_param(r, "db");
	char path[UTIL_PATH_MAX], err[512];
	sqlite3 *app = NULL;

	if (name == NULL) {
		req_error(r, 400, "missing db parameter");
		return NULL;
	}
	if (sync_db_path(r->ctx->conf, name, path, sizeof(path)) == -1) {
		req_error(r, 404, "no such database on this node");
		return NULL;
	}
	if (dbsync_open(path, &app, err, sizeof(err)) == -1) {
		sqlite3_close(app);
		req_error(r, 500, "cannot open database: %s", err);
		return NULL;
	}
	*name_out = name;
	return app;
}

static int
answer_rc(struct req *r, enum dbsync_rc rc, const char *err)
{
	switch (rc) {
	case DBSYNC_EINPUT:
		return req_error(r, 400, "%s", err);
	case DBSYNC_ECOMPACTED:
		return req_error(r, 409, "%s (bootstrap from a snapshot)", err);
	default:
		return req_error(r, 500, "%s", err);
	}
}

/* GET /api/sync/changes?db=&since=&limit=&wire= (peer).  limit=0 asks
 * only for the version vector, which is where a push starts; its answer
 * says which batch format (wire) we read, so the pusher writes the
 * newest we both know.  A batch is in wire 1 unless the asker says it
 * reads a newer one. */
int
api_changes(struct req *r)
{
	const char *name, *lim = req_param(r, "limit"), *es;
	const char *wp = req_param(r, "wire");
	json_object *since = NULL, *batch = NULL, *o;
	char err[512];
	long long limit = SYNC_BATCH, n, wire = 1;
	enum dbsync_rc rc;
	int pending, passes, rest = 0;
	sqlite3 *app;

	if (lim != NULL && util_strtonum(lim, 0, DBSYNC_MAX_BATCH, &limit,
	    &es) == -1)
		return req_error(r, 400, "limit is %s (0..%d)", es,
		    DBSYNC_MAX_BATCH);
	if (wp != NULL && util_strtonum(wp, 1, INT32_MAX, &wire, &es) == -1)
		return req_error(r, 400, "wire is %s (1 or more)", es);
	if (wire > DBSYNC_WIRE)
		wire = DBSYNC_WIRE;
	since = sync_vv_decode(req_param(r, "since") ? req_param(r, "since") : "");
	if (since == NULL)
		return req_error(r, 400, "malformed cursor");
	if ((app = open_db(r, &name)) == NULL) {
		json_object_put(since);
		return 0;
	}
	if (limit == 0) {
		if (dbsync_vv(app, &batch, err, sizeof(err)) == -1) {
			rc = DBSYNC_EINTERNAL;
			goto fail;
		}
		o = json_object_new_object();
		json_object_object_add(o, "vv", batch);
		json_object_object_add(o, "wire",
		    json_object_new_int(DBSYNC_WIRE));
		json_object_put(since);
		sqlite3_close(app);
		return req_json(r, 200, o);
	}
	/*
	 * Harvest first so the feed includes writes not yet picked up.  A
	 * big backlog (a stopped worker, a bulk import) is harvested only as
	 * far as this batch needs, the batch saying "more": the puller
	 * applies it while the next request harvests on, and no request
	 * outlasts the peer timeout harvesting a million rows.
	 */
	pending = dbsync_pending(app);
	/* Bounded: captures that change nothing (UPDATE t SET x = x) fill
	 * no batch, and an application may keep writing them. */
	passes = pending / DBSYNC_HARVEST_STEP + 2;
	for (;;) {
		if (pending <= DBSYNC_HARVEST_STEP)
			rc = dbsync_harvest(app, r->ctx->id->node_id,
			    hlc_now_ms(), NULL, err, sizeof(err));
		else if (batch == NULL)
			rc = DBSYNC_OK;	/* what is harvested may do */
		else
			rc = dbsync_harvest_some(app, r->ctx->id->node_id,
			    hlc_now_ms(), DBSYNC_HARVEST_STEP, &rest, NULL, err,
			    sizeof(err));
		if (rc != DBSYNC_OK)
			goto fail;
		json_object_put(batch);
		rc = dbsync_feed(app, since, (int)limit, (int)wire, &batch,
		    err, sizeof(err));
		if (rc != DBSYNC_OK)
			goto fail;
		if (pending <= DBSYNC_HARVEST_STEP)
			break;
		n = (long long)dbsync_batch_len(batch);
		if (n >= limit || --passes == 0) {
			/* Captures remain: the puller asks again (a batch
			 * with nothing in it ends this pull; the next one
			 * goes on). */
			if (n > 0)
				json_object_object_add(batch, "more",
				    json_object_new_boolean(1));
			break;
		}
		pending = dbsync_pending(app);
	}
	json_object_put(since);
	sqlite3_close(app);
	return req_json(r, 200, batch);
fail:
	json_object_put(batch);
	json_object_put(since);
	sqlite3_close(app);
	return answer_rc(r, rc, err);
}

/* POST /api/sync/receive-changes?db= (peer): one batch, one transaction. */
int
api_receive_changes(struct req *r)
{
	json_object *batch = NULL, *o, *vv = NULL;
	struct dbsync_batch *pb = NULL;
	struct dbsync_stats st;
	const char *name;
	enum dbsync_rc rc;
	char err[512], owner[64];
	int64_t token = 0;
	int64_t early_until;
	sqlite3 *app;

	if (req_json_body(r, &batch) == -1)
		return 0;
	if (!json_object_is_type(batch, json_type_object)) {
		json_object_put(batch);
		return req_error(r, 400, "a batch is a JSON object");
	}
	if ((app = open_db(r, &name)) == NULL) {
		json_object_put(batch);
		return 0;
	}
	/* Checked and decoded before the lease: the batch after this one
	 * can be read while this one applies. */
	if ((rc = dbsync_batch_parse(batch, hlc_now_ms(),
	    (int64_t)r->ctx->conf->max_clock_skew * 1000, &pb, err,
	    sizeof(err))) != DBSYNC_OK) {
		json_object_put(batch);
		sqlite3_close(app);
		return answer_rc(r, rc, err);
	}
	/*
	 * A sender keeps two batches in flight, and another pool worker may
	 * still be reading the first: applied now, this one would only be
	 * deferred and sent again.  Give the first a moment (reading our
	 * vector needs no lease); after RECEIVE_EARLY_WAIT_MS apply anyway.
	 * A pool of one worker could not serve the first meanwhile.
	 */
	for (early_until = tm_now_ms() + RECEIVE_EARLY_WAIT_MS;
	    r->ctx->conf->workers > 1 && tm_now_ms() < early_until &&
	    dbsync_batch_early(app, pb);) {
		struct timespec ts = { 0, 5 * 1000000L };
		nanosleep(&ts, NULL);
	}
	/* The pool applies under the same lease as the worker; it waits
	 * briefly, then tells the sender to come back (423). */
	util_fmt(owner, sizeof(owner), "receive:%ld", (long)getpid());
	if (syncrun_lease(r->ctx->db, owner, RECEIVE_LEASE_WAIT_MS, &token,
	    err, sizeof(err)) == -1) {
		dbsync_batch_free(pb);
		json_object_put(batch);
		sqlite3_close(app);
		req_header(r, "Retry-After: 1");
		return req_error(r, 423, "%s", err);
	}
	memset(&st, 0, sizeof(st));
	rc = dbsync_apply_parsed(app, r->ctx->id->node_id, pb, hlc_now_ms(),
	    (int64_t)r->ctx->conf->max_clock_skew * 1000, &st, err,
	    sizeof(err));
	syncrun_unlease(r->ctx->db, owner, token);
	dbsync_batch_free(pb);
	json_object_put(batch);
	if (rc != DBSYNC_OK) {
		sqlite3_close(app);
		return answer_rc(r, rc, err);
	}
	if (dbsync_vv(app, &vv, err, sizeof(err)) == -1) {
		sqlite3_close(app);
		return req_error(r, 500, "%s", err);
	}
	sqlite3_close(app);
	if (st.applied > 0)
		wake_applied(r);
	o = json_object_new_object();
	json_object_object_add(o, "applied", json_object_new_int64(st.applied));
	json_object_object_add(o, "skipped", json_object_new_int64(st.skipped));
	json_object_object_add(o, "deferred", json_object_new_int64(st.deferred));
	json_object_object_add(o, "parked", json_object_new_int64(st.parked));
	json_object_object_add(o, "conflicts", json_object_new_int64(st.conflicts));
	json_object_object_add(o, "vv", vv);
	return req_json(r, 200, o);
}

/* POST /api/sync/data?db= (user token or session): an offline client's
 * rows, with timezone-aware timestamps. */
int
api_data(struct req *r)
{
	json_object *body = NULL, *o;
	struct dbsync_stats st;
	const char *name;
	enum dbsync_rc rc;
	char err[512];
	sqlite3 *app;

	if (req_json_body(r, &body) == -1)
		return 0;
	if (!json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		return req_error(r, 400, "want {\"changes\": [...]}");
	}
	if ((app = open_db(r, &name)) == NULL) {
		json_object_put(body);
		return 0;
	}
	memset(&st, 0, sizeof(st));
	rc = dbsync_apply_client(app, r->ctx->id->node_id, body, hlc_now_ms(),
	    &st, err, sizeof(err));
	json_object_put(body);
	sqlite3_close(app);
	if (rc != DBSYNC_OK)
		return answer_rc(r, rc, err);
	wake_send(r->ctx->conf, "sync");
	o = json_object_new_object();
	json_object_object_add(o, "applied", json_object_new_int64(st.applied));
	json_object_object_add(o, "conflicts", json_object_new_int64(st.conflicts));
	return req_json(r, 200, o);
}

/* POST /api/sync/sync[?peer=] (admin): sync now, answer the counts. */
int
api_sync_now(struct req *r)
{
	const char *only = req_param(r, "peer");
	json_object *o;

	o = syncrun_all(r->ctx->db, r->ctx->conf, r->ctx->id,
	    only && *only ? only : NULL);
	if (o == NULL)
		return req_error(r, 404, "no such peer");
	return req_json(r, 200, o);
}

/*
 * POST /api/sync/trigger (anyone, same origin): ask the worker to sync
 * soon.  It exposes nothing and only shortens a wait, so it needs no
 * login, but a cross-site page may not fire it and it is rate-limited.
 */
int
api_trigger(struct req *r)
{
	const char *origin = r->origin;
	int64_t now = tm_now_ms();
	sqlite3_stmt *st = NULL;
	json_object *o;
	int started = 0;

	if (*origin != '\0') {
		const char *host = strstr(origin, "://");
		host = host ? host + 3 : origin;
		if (strcmp(host, r->host) != 0)
			return req_error(r, 403, "cross-origin trigger refused");
	}
	o = json_object_new_object();
	if (store_scalar(r->ctx->db, "SELECT count(*) FROM peers WHERE "
	    "enabled = 1") <= 0) {
		json_object_object_add(o, "started", json_object_new_boolean(0));
		json_object_object_add(o, "reason", json_object_new_string("no peers"));
		return req_json(r, 200, o);
	}
	/* One conditional UPDATE is the rate limit, shared by every pool
	 * worker: only a trigger outside the cooldown changes the row. */
	if (sqlite3_prepare_v2(r->ctx->db, "INSERT INTO settings(key, value) "
	    "VALUES ('last_trigger_ms', ?1) ON CONFLICT(key) DO UPDATE SET "
	    "value = ?1 WHERE CAST(value AS INTEGER) <= ?1 - ?2", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_int64(st, 2, TRIGGER_COOLDOWN_MS);
		if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(r->ctx->db) > 0)
			started = 1;
	}
	sqlite3_finalize(st);
	if (!started) {
		char last[32];
		long long wait_s = 1;
		if (store_setting_get(r->ctx->db, "last_trigger_ms", last,
		    sizeof(last)) == 0) {
			wait_s = (strtoll(last, NULL, 10) + TRIGGER_COOLDOWN_MS -
			    now + 999) / 1000;
			if (wait_s < 1)
				wait_s = 1;
		}
		json_object_put(o);
		req_header(r, "Retry-After: %lld", wait_s);
		return req_error(r, 429, "a sync was started moments ago");
	}
	if (wake_send(r->ctx->conf, "sync") == -1) {
		json_object_object_add(o, "started", json_object_new_boolean(0));
		json_object_object_add(o, "reason",
		    json_object_new_string("sync worker not running"));
		return req_json(r, 503, o);
	}
	json_object_object_add(o, "started", json_object_new_boolean(1));
	return req_json(r, 202, o);
}

#define SNAPSHOT_KEEP_S	600	/* a snapshot outlives its download by this */

/* Remove snapshots older than SNAPSHOT_KEEP_S: nginx may still be sending
 * a recent one, so they cannot go right after the answer. */
static void
reap_snapshots(const char *dir)
{
	char path[UTIL_PATH_MAX];
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "snap-", 5) != 0 ||
		    util_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) == -1)
			continue;
		if (lstat(path, &st) == 0 && now - st.st_mtime > SNAPSHOT_KEEP_S)
			unlink(path);
	}
	closedir(d);
}

/* GET /api/sync/database?db= (peer): a consistent snapshot for a new
 * node, with the cursor it corresponds to; nginx sends the bytes. */
int
api_database(struct req *r)
{
	char dir[UTIL_PATH_MAX], path[UTIL_PATH_MAX], name[64], err[512];
	json_object *vv = NULL;
	const char *db;
	char *cur;
	sqlite3 *app;

	if ((app = open_db(r, &db)) == NULL)
		return 0;
	node_run_path(r->ctx->conf, dir, sizeof(dir), "tmp/snapshots");
	reap_snapshots(dir);
	util_random_hex(name + 5, sizeof(name) - 5, 16);
	memcpy(name, "snap-", 5);
	util_fmt(path, sizeof(path), "%s/%s", dir, name);
	if (dbsync_snapshot(app, path, &vv, err, sizeof(err)) == -1) {
		sqlite3_close(app);
		return req_error(r, 500, "snapshot: %s", err);
	}
	sqlite3_close(app);
	cur = sync_vv_encode(vv);
	json_object_put(vv);
	if (cur == NULL) {
		unlink(path);
		return req_error(r, 500, "out of memory");
	}
	log_info("snapshot of %s for %s", db, r->auth.peer_name);
	req_header(r, "X-Accel-Redirect: /_meshsync_snapshots/%s", name);
	req_header(r, "X-Meshsync-Cursor: %s", cur);
	free(cur);
	return req_send(r, 200, "application/vnd.sqlite3", "", 0);
}
