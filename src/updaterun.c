/* updaterun.c - the update engine over signed peer requests: push, accept, apply, report, recover, rollback. */
#include "updaterun.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events.h"
#include "jget.h"
#include "keys.h"
#include "log.h"
#include "peer.h"
#include "tm.h"
#include "update.h"
#include "util.h"

#define UPDATERUN_DETAIL_MAX	900
/* An update accepted this recently may still have its apply process on
 * the way (spawned, not yet holding the update lock): not dead yet. */
#define UPDATERUN_SPAWN_GRACE_MS	60000

static const char *const final_states[] = {
	"healthy", "done", "rolled back", "failed", "refused", "interrupted",
};

static const char *const report_states[] = {
	"accepted", "fetching", "staged", "swapped", "script started",
	"healthy", "done", "rolled back", "failed", "interrupted",
};

int
updaterun_state_final(const char *state)
{
	for (size_t i = 0; i < sizeof(final_states) / sizeof(final_states[0]);
	    i++)
		if (strcmp(state, final_states[i]) == 0)
			return 1;
	return 0;
}

/* Record a state: the row, the activity log and a live event. */
static void
note(sqlite3 *db, const struct conf *c, const char *uid, const char *role,
    const char *state, const char *detail)
{
	char now[TM_RFC3339_LEN], peer[PEERS_NAME_MAX] = "", clean[1024];
	sqlite3_stmt *st = NULL;
	json_object *ev;

	log_scrub(clean, sizeof(clean), detail ? detail : "");
	tm_rfc3339(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(db, "UPDATE updates SET state = ?, detail = ?, "
	    "final = ?, updated = ? WHERE id = ? AND role = ? "
	    "RETURNING peer_name", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, clean, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, updaterun_state_final(state));
		sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, uid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, role, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			util_strlcpy(peer, (const char *)sqlite3_column_text(st,
			    0), sizeof(peer));
	}
	sqlite3_finalize(st);
	store_event(db, strcmp(state, "failed") == 0 || strcmp(state,
	    "rolled back") == 0 || strcmp(state, "refused") == 0 ||
	    strcmp(state, "interrupted") == 0 ? "warn" : "info", "update",
	    peer, "update %.8s (%s): %s%s%s", uid, strcmp(role, "origin") == 0 ?
	    "sent" : "received", state, *clean ? ": " : "", clean);
	log_info("update %.8s %s %s: %s %s", uid, role, peer, state, clean);
	ev = json_object_new_object();
	json_object_object_add(ev, "update", json_object_new_string(uid));
	json_object_object_add(ev, "role", json_object_new_string(role));
	json_object_object_add(ev, "peer", json_object_new_string(peer));
	json_object_object_add(ev, "state", json_object_new_string(state));
	json_object_object_add(ev, "detail", json_object_new_string(clean));
	json_object_object_add(ev, "final",
	    json_object_new_boolean(updaterun_state_final(state)));
	events_publish(c, db, "update", ev);
}

static int
insert_row(sqlite3 *db, const char *uid, const char *role,
    const struct peer *p, const char *release, const char *mhash,
    const char *state, const char *by)
{
	char now[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	int rc = -1;

	tm_rfc3339(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(db, "INSERT INTO updates(id, role, peer_node, "
	    "peer_name, release, manifest_hash, state, by, started, updated) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
	    NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, release, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, mhash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, by ? by : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, now, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

/* ---- origin: push ------------------------------------------------------ */

static int
has_capability(json_object *ping, const char *cap)
{
	json_object *caps;

	if (!json_object_object_get_ex(ping, "capabilities", &caps) ||
	    !json_object_is_type(caps, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(caps); i++) {
		const char *s = json_object_get_string(
		    json_object_array_get_idx(caps, i));
		if (s != NULL && strcmp(s, cap) == 0)
			return 1;
	}
	return 0;
}

/*
 * Can p take an update?  The one unsigned request of a push; whatever it
 * answers, a target that cannot is told nothing else.  Returns 0, or -1
 * with the message for the superadmin.
 */
static int
check_target(const struct peer *p, char *err, size_t errsz)
{
	json_object *ping = NULL, *v;
	const char *ver;
	char why[512];
	int proto = 0, cap;

	if (peer_ping(p->url, &ping, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "%s: %s", p->name, why);
		return -1;
	}
	ver = jget_str(ping, "version", NULL);
	if (json_object_object_get_ex(ping, "protocol", &v) &&
	    json_object_is_type(v, json_type_int))
		proto = json_object_get_int(v);
	cap = has_capability(ping, "update");
	if (strcmp(jget_str(ping, "node_id", ""), p->node_id) != 0) {
		util_fmt(err, errsz, "%s now answers as another node: check "
		    "the server list", p->name);
		json_object_put(ping);
		return -1;
	}
	if (!cap || proto < UPDATE_PROTOCOL_MIN) {
		util_fmt(err, errsz, "%s runs meshsync %s (protocol %d), which "
		    "cannot receive remote updates: it lacks %s%s%s (protocol "
		    "%d or later). One-time manual step: install this meshsync "
		    "(%s) on %s by hand and restart it (README, \"Remote "
		    "update\"); updates from here work after that. Nothing was "
		    "sent to %s.", p->name, ver ? ver : "unknown", proto,
		    cap ? "" : "the \"update\" capability",
		    !cap && proto < UPDATE_PROTOCOL_MIN ? " and " : "",
		    proto < UPDATE_PROTOCOL_MIN ? "a new enough protocol" : "",
		    UPDATE_PROTOCOL_MIN, PACKAGE_VERSION, p->name, p->name);
		json_object_put(ping);
		return -1;
	}
	json_object_put(ping);
	return 0;
}

/* Build and store this node's release; release/hash get its id/SHA-256. */
static int
make_release(sqlite3 *db, const struct conf *c,
    const struct store_identity *id, char *release, size_t releasesz,
    char *hash, size_t hashsz, int64_t *count, char *err, size_t errsz)
{
	struct update_cfg u;
	json_object *m = NULL, *files, *v;
	sqlite3_stmt *st = NULL;
	char now[TM_RFC3339_LEN], h[KEYS_HASH_HEX];
	const char *text;
	int rc = -1;

	update_cfg_init(&u, c);
	if (update_manifest_build(&u, &m, err, errsz) == -1)
		return -1;
	util_random_hex(release, releasesz, 16);
	tm_rfc3339(now, sizeof(now), tm_now_ms());
	json_object_object_add(m, "release", json_object_new_string(release));
	json_object_object_add(m, "origin", json_object_new_string(id->node_id));
	json_object_object_add(m, "created", json_object_new_string(now));
	json_object_object_add(m, "meshsync", json_object_new_string(
	    PACKAGE_VERSION));
	text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	keys_sha256_hex(h, text, strlen(text));
	util_strlcpy(hash, h, hashsz);
	json_object_object_get_ex(m, "count", &v);
	*count = json_object_get_int64(v);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto dberr;
	if (sqlite3_prepare_v2(db, "INSERT INTO update_releases(id, created, "
	    "hash, manifest) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, release, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, h, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto rollback;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO update_release_files(release, "
	    "path, size, hash) VALUES (?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	json_object_object_get_ex(m, "files", &files);
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *e = json_object_array_get_idx(files, i), *sz;
		if (strcmp(jget_str(e, "kind", NULL), "file") != 0)
			continue;
		json_object_object_get_ex(e, "size", &sz);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, release, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, jget_str(e, "path", NULL), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, json_object_get_int64(sz));
		sqlite3_bind_text(st, 4, jget_str(e, "hash", NULL), -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Older manifests than the last 10 go (their file rows by cascade);
	 * targets fetch a release within seconds of being told about it. */
	if (sqlite3_exec(db, "DELETE FROM update_releases WHERE id NOT IN "
	    "(SELECT id FROM update_releases ORDER BY created DESC LIMIT 10)",
	    NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	rc = 0;
	goto done;
rollback:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	st = NULL;
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	goto done;
dberr:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
done:
	sqlite3_finalize(st);
	json_object_put(m);
	return rc;
}

static json_object *
peer_result(const char *name, const char *uid, const char *state,
    const char *error)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "peer", json_object_new_string(name));
	json_object_object_add(o, "update", json_object_new_string(uid));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "ok", json_object_new_boolean(error == NULL));
	if (error != NULL)
		json_object_object_add(o, "error", json_object_new_string(error));
	return o;
}

static int
push_one(sqlite3 *db, const struct conf *c, const struct store_identity *id,
    const struct peer *p, const char *by, char *release, char *mhash,
    int64_t *count, json_object *arr, char *err, size_t errsz)
{
	char uid[UPDATE_ID_HEX], why[1024], body[512];
	struct peer_resp resp;

	util_random_hex(uid, sizeof(uid), 16);
	if (check_target(p, why, sizeof(why)) == -1) {
		insert_row(db, uid, "origin", p, "", "", "requested", by);
		note(db, c, uid, "origin", "refused", why);
		json_object_array_add(arr, peer_result(p->name, uid, "refused",
		    why));
		util_strlcpy(err, why, errsz);
		return -1;
	}
	if (*release == '\0' && make_release(db, c, id, release,
	    UPDATE_ID_HEX, mhash, KEYS_HASH_HEX, count, why,
	    sizeof(why)) == -1) {
		*release = '\0';
		json_object_array_add(arr, peer_result(p->name, uid, "failed",
		    why));
		util_strlcpy(err, why, errsz);
		return -1;
	}
	if (insert_row(db, uid, "origin", p, release, mhash, "requested",
	    by) == -1) {
		util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
		json_object_array_add(arr, peer_result(p->name, uid, "failed",
		    err));
		return -1;
	}
	util_fmt(body, sizeof(body), "{\"update\":\"%s\",\"release\":\"%s\","
	    "\"manifest_hash\":\"%s\",\"count\":%lld}", uid, release, mhash,
	    (long long)*count);
	if (peer_call(id, p, "POST", "/api/sync/update", body, strlen(body),
	    &resp) == -1) {
		util_fmt(why, sizeof(why), "cannot reach %s: %s", p->name,
		    resp.err);
		goto refused;
	}
	peer_resp_free(&resp);
	if (resp.status != 202 && resp.status != 200) {
		util_fmt(why, sizeof(why), "%s refused the update: %s",
		    p->name, resp.err);
		goto refused;
	}
	note(db, c, uid, "origin", "accepted", "the target is fetching the "
	    "release");
	json_object_array_add(arr, peer_result(p->name, uid, "accepted", NULL));
	return 0;
refused:
	note(db, c, uid, "origin", "failed", why);
	json_object_array_add(arr, peer_result(p->name, uid, "failed", why));
	util_strlcpy(err, why, errsz);
	return -1;
}

int
updaterun_push(sqlite3 *db, const struct conf *c,
    const struct store_identity *id, const char *sel, const char *by,
    json_object **out, char *err, size_t errsz)
{
	char release[UPDATE_ID_HEX] = "", mhash[KEYS_HASH_HEX] = "";
	json_object *arr, *list = NULL;
	int64_t count = 0;
	int failed = 0, tried = 0;

	*out = NULL;
	if (c->app_dir[0] == '\0') {
		util_fmt(err, errsz, "app_dir is not set in meshsync.conf: "
		    "there is nothing to push");
		return UPDATERUN_ECONFLICT;
	}
	arr = json_object_new_array();
	if (sel != NULL && *sel != '\0' && strcmp(sel, "all") != 0) {
		struct peer p;
		if (peers_find(db, sel, &p) != 0) {
			json_object_put(arr);
			util_fmt(err, errsz, "no peer '%s'", sel);
			return UPDATERUN_ENOTFOUND;
		}
		tried = 1;
		if (push_one(db, c, id, &p, by, release, mhash, &count, arr, err,
		    errsz) == -1)
			failed = 1;
	} else {
		list = peers_list(db);
		for (size_t i = 0; list != NULL &&
		    i < json_object_array_length(list); i++) {
			json_object *pj = json_object_array_get_idx(list, i), *v;
			char why[1024];
			struct peer p;
			json_object_object_get_ex(pj, "node_id", &v);
			if (peers_by_node(db, json_object_get_string(v), &p) != 0 ||
			    !p.enabled)
				continue;
			tried++;
			if (push_one(db, c, id, &p, by, release, mhash, &count,
			    arr, why, sizeof(why)) == -1)
				failed++;
		}
		json_object_put(list);
		if (tried == 0) {
			json_object_put(arr);
			util_fmt(err, errsz, "no enabled peers to update");
			return UPDATERUN_ENOTFOUND;
		}
	}
	*out = json_object_new_object();
	json_object_object_add(*out, "release", json_object_new_string(release));
	json_object_object_add(*out, "peers", arr);
	json_object_object_add(*out, "failed", json_object_new_int(failed));
	if (tried == 1 && failed == 1)
		return UPDATERUN_ECONFLICT;
	return UPDATERUN_OK;
}

/* ---- target: accept and apply ----------------------------------------- */

/*
 * Start `meshsync update apply` detached from the pool: it must outlive
 * the FastCGI worker that accepted the request and keep none of its
 * descriptors (the FastCGI socket above all).  A pipe that closes on exec
 * tells us whether the exec worked, so a failure is an answer, not a
 * silently stuck update.
 */
static int
spawn_apply(const struct conf *c, const char *uid, char *err, size_t errsz)
{
	char exe[UTIL_PATH_MAX], log[UTIL_PATH_MAX], *del;
	int pfd[2], rc, e = 0;
	ssize_t n;

	if (util_self_exe(exe, sizeof(exe)) == -1) {
		util_fmt(err, errsz, "cannot find the meshsync executable");
		return -1;
	}
	/* The binary was replaced on disk since we started (an upgrade):
	 * run the one installed now at the same path. */
	if ((del = strstr(exe, " (deleted)")) != NULL && del[10] == '\0')
		*del = '\0';
	util_fmt(log, sizeof(log), "%s/update.log", c->dir);
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		util_fmt(err, errsz, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((rc = update_fork_detached(NULL, log, NULL, pfd[1])) == -1) {
		util_fmt(err, errsz, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (rc == 0) {
		signal(SIGTERM, SIG_DFL);
		execl(exe, "meshsync", "update", "apply", "--dir", c->dir,
		    "--id", uid, (char *)NULL);
		e = errno;
		fprintf(stderr, "meshsync update apply: exec %s: %s\n", exe,
		    strerror(e));
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n == -1 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(e)) {
		util_fmt(err, errsz, "cannot start %s: %s", exe, strerror(e));
		return -1;
	}
	return 0;
}

int
updaterun_accept(sqlite3 *db, const struct conf *c, const struct peer *origin,
    json_object *req, char *err, size_t errsz)
{
	const char *uid = jget_str(req, "update", NULL);
	const char *rel = jget_str(req, "release", NULL);
	const char *mh = jget_str(req, "manifest_hash", NULL);
	struct update_cfg u;
	struct stat st;
	int lock;

	if (!util_is_hex(uid, 32) || !util_is_hex(rel, 32) ||
	    !util_is_hex(mh, 64)) {
		util_fmt(err, errsz, "want {\"update\", \"release\": 32 hex "
		    "digits, \"manifest_hash\": 64}");
		return UPDATERUN_EINPUT;
	}
	update_cfg_init(&u, c);
	if (u.app_dir[0] == '\0') {
		util_fmt(err, errsz, "app_dir is not set on %s: it has no "
		    "application tree to update", c->name);
		return UPDATERUN_ECONFLICT;
	}
	if (lstat(u.app_dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		util_fmt(err, errsz, "app_dir %s on %s is not a directory",
		    u.app_dir, c->name);
		return UPDATERUN_ECONFLICT;
	}
	if ((lock = update_lock(&u)) == -1) {
		util_fmt(err, errsz, errno == EWOULDBLOCK ? "an update is "
		    "already running on %s" : "cannot lock the update on %s",
		    c->name);
		return UPDATERUN_ECONFLICT;
	}
	close(lock);
	if (insert_row(db, uid, "target", origin, rel, mh, "accepted",
	    origin->name) == -1) {
		util_fmt(err, errsz, "update %s was received before", uid);
		return UPDATERUN_ECONFLICT;
	}
	store_event(db, "info", "update", origin->name, "update %.8s "
	    "(received): accepted", uid);
	if (spawn_apply(c, uid, err, errsz) == -1) {
		note(db, c, uid, "target", "failed", err);
		return UPDATERUN_EINTERNAL;
	}
	return UPDATERUN_OK;
}

struct applyctx {
	const struct store_identity	*self;
	const struct peer		*origin;
	const char			*release;
	sqlite3				*db;
	const struct conf		*conf;
	const char			*uid;
};

static void
report(struct applyctx *a, const char *state, const char *detail)
{
	json_object *o = json_object_new_object();
	struct peer_resp resp;
	const char *b;

	note(a->db, a->conf, a->uid, "target", state, detail);
	json_object_object_add(o, "update", json_object_new_string(a->uid));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "detail", json_object_new_string(
	    detail ? detail : ""));
	b = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (a->origin == NULL)
		log_warnx("update %.8s: origin unknown, '%s' not reported",
		    a->uid, state);
	else if (peer_call(a->self, a->origin, "POST",
	    "/api/sync/update/report", b, strlen(b), &resp) == -1)
		log_warnx("update %.8s: reporting '%s' to %s: %s", a->uid,
		    state, a->origin->name, resp.err);
	else {
		if (resp.status != 200)
			log_warnx("update %.8s: %s answered %ld to the report: "
			    "%s", a->uid, a->origin->name, resp.status, resp.err);
		peer_resp_free(&resp);
	}
	json_object_put(o);
}

static int
fetch_release_file(void *arg, const char *path, const char *hash,
    int64_t size, struct files_sink *out, char *err, size_t errsz)
{
	struct applyctx *a = arg;
	char uri[3 * UTIL_PATH_MAX + 128], q[3 * UTIL_PATH_MAX + 1];

	(void)hash;	/* the engine verifies what arrived */
	if (util_urlencode(q, sizeof(q), path, 1) == -1 || util_fmt(uri, sizeof(uri),
	    "/api/sync/update/file?release=%s&path=%s", a->release, q) == -1) {
		util_fmt(err, errsz, "path too long");
		return -1;
	}
	return peer_download(a->self, a->origin, uri, out, size, err, errsz);
}

static int
health_check(void *arg, const char *url, char *detail, size_t detailsz)
{
	long status = 0;

	(void)arg;
	if (peer_http_status(url, 5, &status, detail, detailsz) == -1)
		return 0;
	if (status >= 200 && status <= 299)
		return 1;
	util_fmt(detail, detailsz, "HTTP %ld", status);
	return 0;
}

/* Close rows of apply processes that are gone (called with the lock).
 * A row still 'accepted' a moment after it was written is skipped: the
 * pool writes it, then spawns the apply process, which takes the lock
 * only once it runs; a worker starting in between must not declare it
 * dead (the apply process would then find no pending update). */
static void
close_dead_rows(sqlite3 *db, const struct conf *c,
    const struct store_identity *id, const char *except,
    enum update_recovery what)
{
	sqlite3_stmt *st = NULL;
	const char *detail;
	char uids[16][UPDATE_ID_HEX], origins[16][STORE_NODE_ID_LEN];
	char young[TM_RFC3339_LEN];
	int n = 0;

	switch (what) {
	case UPDATE_REC_UNDONE:
		detail = "the update process died mid-swap; the swap was "
		    "undone and the previous version is in place";
		break;
	case UPDATE_REC_COMPLETED:
		detail = "the update process died after the swap; the new "
		    "version is in place but was not health-checked";
		break;
	default:
		detail = "the update process died before the swap; nothing "
		    "changed";
		break;
	}
	tm_rfc3339(young, sizeof(young), tm_now_ms() -
	    UPDATERUN_SPAWN_GRACE_MS);
	if (sqlite3_prepare_v2(db, "SELECT id, peer_node FROM updates WHERE "
	    "role = 'target' AND final = 0 AND id != ? AND NOT (state = "
	    "'accepted' AND started > ?) ORDER BY started DESC LIMIT 16", -1,
	    &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, except ? except : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, young, -1, SQLITE_STATIC);
	while (n < 16 && sqlite3_step(st) == SQLITE_ROW) {
		util_strlcpy(uids[n], (const char *)sqlite3_column_text(st, 0),
		    sizeof(uids[n]));
		util_strlcpy(origins[n], (const char *)sqlite3_column_text(st,
		    1), sizeof(origins[n]));
		n++;
	}
	sqlite3_finalize(st);
	for (int i = 0; i < n; i++) {
		struct peer p;
		struct applyctx a = { .self = id, .db = db, .conf = c,
		    .uid = uids[i] };
		int known = peers_by_node(db, origins[i], &p) == 0;
		a.origin = known ? &p : NULL;
		/* Only the newest dead row can have been mid-swap. */
		report(&a, "interrupted", i == 0 ? detail : "the update "
		    "process died; a later one replaced it");
	}
}

int
updaterun_apply(const struct conf *c, const char *uid)
{
	char path[UTIL_PATH_MAX], err[1024], detail[1024], stage[UTIL_PATH_MAX];
	char origin_node[STORE_NODE_ID_LEN] = "", release[UPDATE_ID_HEX] = "";
	char mhash[KEYS_HASH_HEX] = "", backup[256], which[256], h[KEYS_HASH_HEX];
	char uri[256], restored[256];
	struct store_identity id;
	struct update_stats ust;
	struct update_cfg u;
	struct peer_resp resp;
	struct peer origin;
	struct applyctx a;
	enum update_recovery what;
	json_object *m = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int lock = -1, rc = 1, hrc;

	conf_path(c, path, sizeof(path), CONF_STATE_DB);
	if (store_open(path, 0, &db, err, sizeof(err)) == -1 ||
	    store_identity_load(db, &id) == -1) {
		log_err("update apply: state DB: %s", err);
		sqlite3_close(db);
		return 1;
	}
	memset(&a, 0, sizeof(a));
	a.self = &id;
	a.db = db;
	a.conf = c;
	a.uid = uid;
	if (sqlite3_prepare_v2(db, "SELECT peer_node, release, manifest_hash "
	    "FROM updates WHERE id = ? AND role = 'target' AND final = 0", -1,
	    &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			util_strlcpy(origin_node, (const char *)
			    sqlite3_column_text(st, 0), sizeof(origin_node));
			util_strlcpy(release, (const char *)
			    sqlite3_column_text(st, 1), sizeof(release));
			util_strlcpy(mhash, (const char *)
			    sqlite3_column_text(st, 2), sizeof(mhash));
		}
	}
	sqlite3_finalize(st);
	if (*origin_node == '\0') {
		log_err("update apply: no pending update %s", uid);
		goto done;
	}
	if (peers_by_node(db, origin_node, &origin) == 0)
		a.origin = &origin;
	a.release = release;
	update_cfg_init(&u, c);
	if ((lock = update_lock(&u)) == -1) {
		report(&a, "failed", errno == EWOULDBLOCK ? "another update "
		    "is running on this node" : "cannot take the update lock");
		goto done;
	}
	if (update_recover(&u, &what, detail, sizeof(detail), err,
	    sizeof(err)) == -1) {
		util_fmt(detail, sizeof(detail), "an earlier interrupted "
		    "update could not be recovered: %s", err);
		report(&a, "failed", detail);
		goto done;
	}
	close_dead_rows(db, c, &id, uid, what);
	if (a.origin == NULL || !origin.enabled) {
		report(&a, "failed", "the origin is not an enabled peer here");
		goto done;
	}
	report(&a, "fetching", "fetching the manifest");
	util_fmt(uri, sizeof(uri), "/api/sync/update/manifest?release=%s",
	    release);
	if (peer_call(&id, &origin, "GET", uri, NULL, 0, &resp) == -1) {
		util_fmt(detail, sizeof(detail), "fetching the manifest: %s",
		    resp.err);
		report(&a, "failed", detail);
		goto done;
	}
	if (resp.status != 200 || resp.body == NULL) {
		util_fmt(detail, sizeof(detail), "fetching the manifest: %s "
		    "answered %ld: %s", origin.name, resp.status, resp.err);
		peer_resp_free(&resp);
		report(&a, "failed", detail);
		goto done;
	}
	keys_sha256_hex(h, resp.body, resp.len);
	if (strcmp(h, mhash) != 0) {
		peer_resp_free(&resp);
		report(&a, "failed", "the manifest does not match the hash "
		    "the origin announced: release refused, nothing changed");
		goto done;
	}
	m = json_tokener_parse(resp.body);
	peer_resp_free(&resp);
	if (update_manifest_check(m, err, sizeof(err)) == -1) {
		util_fmt(detail, sizeof(detail), "release refused, nothing "
		    "changed: %s", err);
		report(&a, "failed", detail);
		goto done;
	}
	{
		struct files_fetcher f = { .fetch = fetch_release_file,
		    .arg = &a };
		if (update_stage(&u, m, uid, &f, stage, sizeof(stage), &ust,
		    err, sizeof(err)) == -1) {
			report(&a, "failed", err);
			goto done;
		}
	}
	update_crash_point("staged");
	util_fmt(detail, sizeof(detail), "%lld files verified: %lld "
	    "unchanged, %lld fetched (%lld bytes)", (long long)ust.files,
	    (long long)ust.reused, (long long)ust.fetched,
	    (long long)ust.bytes_fetched);
	report(&a, "staged", detail);
	if (update_swap(&u, stage, uid, backup, sizeof(backup), err,
	    sizeof(err)) == -1) {
		util_fmt(detail, sizeof(detail), "swap failed, the previous "
		    "tree is in place: %s", err);
		report(&a, "failed", detail);
		goto done;
	}
	util_fmt(detail, sizeof(detail), "previous tree kept as backups/%s",
	    backup);
	report(&a, "swapped", detail);
	if (update_run_script(&u, uid, which, sizeof(which), err,
	    sizeof(err)) == -1) {
		util_fmt(detail, sizeof(detail), "post-update script: %s", err);
		report(&a, "script started", detail);
	} else if (*which == '\0') {
		util_fmt(detail, sizeof(detail), "no post-update script found "
		    "(tried %s, .sh)", u.scripts);
		report(&a, "script started", detail);
	} else {
		util_fmt(detail, sizeof(detail), "%s started, output in "
		    "update.log", which);
		report(&a, "script started", detail);
	}
	{
		struct update_health hc = { .check = health_check };
		char why[512];
		hrc = update_wait_healthy(&u, &hc, why, sizeof(why));
		if (hrc == 1) {
			report(&a, "healthy", why);
			rc = 0;
		} else if (hrc == 2) {
			report(&a, "done", why);
			rc = 0;
		} else if (update_restore(&u, backup, uid, restored,
		    sizeof(restored), err, sizeof(err)) != 0) {
			util_fmt(detail, sizeof(detail), "%s; restoring the "
			    "backup failed too: %s", why, err);
			report(&a, "failed", detail);
		} else {
			update_run_script(&u, uid, which, sizeof(which), err,
			    sizeof(err));
			util_fmt(detail, sizeof(detail), "%s; backups/%s "
			    "restored%s%s", why, restored, *which ?
			    ", ran " : "", which);
			report(&a, "rolled back", detail);
		}
	}
	update_prune_backups(&u);
done:
	json_object_put(m);
	if (lock != -1)
		close(lock);
	sqlite3_close(db);
	return rc;
}

/* ---- origin: reports --------------------------------------------------- */

int
updaterun_report_in(sqlite3 *db, const struct conf *c, const char *peer_node,
    json_object *body, char *err, size_t errsz)
{
	const char *uid = jget_str(body, "update", NULL);
	const char *state = jget_str(body, "state", NULL);
	const char *detail = jget_str(body, "detail", NULL);
	sqlite3_stmt *st = NULL;
	int known = 0, ok_state = 0;

	if (!util_is_hex(uid, 32) || state == NULL || (detail != NULL &&
	    strlen(detail) > UPDATERUN_DETAIL_MAX)) {
		util_fmt(err, errsz, "want {\"update\", \"state\", \"detail\"}");
		return UPDATERUN_EINPUT;
	}
	for (size_t i = 0; i < sizeof(report_states) /
	    sizeof(report_states[0]); i++)
		if (strcmp(state, report_states[i]) == 0)
			ok_state = 1;
	if (!ok_state) {
		util_fmt(err, errsz, "unknown state");
		return UPDATERUN_EINPUT;
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM updates WHERE id = ? AND "
	    "role = 'origin' AND peer_node = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, peer_node, -1, SQLITE_STATIC);
		known = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	if (!known) {
		util_fmt(err, errsz, "no update %s was sent to you", uid);
		return UPDATERUN_ENOTFOUND;
	}
	note(db, c, uid, "origin", state, detail);
	return UPDATERUN_OK;
}

/* ---- recovery, rollback, status --------------------------------------- */

void
updaterun_recover(sqlite3 *db, const struct conf *c,
    const struct store_identity *id)
{
	char detail[512], err[512];
	enum update_recovery what;
	struct update_cfg u;
	int lock;

	update_cfg_init(&u, c);
	if (u.app_dir[0] == '\0')
		return;
	/* Held: an apply process is alive and will do this itself. */
	if ((lock = update_lock(&u)) == -1)
		return;
	if (update_recover(&u, &what, detail, sizeof(detail), err,
	    sizeof(err)) == -1)
		log_err("update recovery failed: %s", err);
	else
		close_dead_rows(db, c, id, NULL, what);
	close(lock);
}

int
updaterun_rollback(sqlite3 *db, const struct conf *c,
    const struct store_identity *id, FILE *out, char *err, size_t errsz)
{
	char detail[512], restored[256], uid[UPDATE_ID_HEX], which[256];
	enum update_recovery what;
	struct update_cfg u;
	int lock, rc;

	update_cfg_init(&u, c);
	if (u.app_dir[0] == '\0') {
		util_fmt(err, errsz, "app_dir is not set in meshsync.conf");
		return -1;
	}
	if ((lock = update_lock(&u)) == -1) {
		util_fmt(err, errsz, errno == EWOULDBLOCK ? "an update is "
		    "running: try again when it has ended" : "cannot take the "
		    "update lock: %s", strerror(errno));
		return -1;
	}
	if (update_recover(&u, &what, detail, sizeof(detail), err,
	    errsz) == -1) {
		close(lock);
		return -1;
	}
	close_dead_rows(db, c, id, NULL, what);
	if (what == UPDATE_REC_UNDONE || what == UPDATE_REC_RESTORED) {
		fprintf(out, "%s\n", detail);
		store_event(db, "warn", "update", NULL, "rollback: %s", detail);
		close(lock);
		return 0;
	}
	if (what == UPDATE_REC_COMPLETED)
		fprintf(out, "%s\n", detail);
	util_random_hex(uid, sizeof(uid), 16);
	rc = update_restore(&u, NULL, uid, restored, sizeof(restored), err,
	    errsz);
	if (rc == 0) {
		fprintf(out, "restored backups/%s into %s\n", restored,
		    u.app_dir);
		store_event(db, "warn", "update", NULL, "rollback: backups/%s "
		    "restored by hand", restored);
		if (update_run_script(&u, uid, which, sizeof(which), detail,
		    sizeof(detail)) == 0 && *which != '\0')
			fprintf(out, "started %s (output in update.log)\n", which);
		update_prune_backups(&u);
	}
	close(lock);
	return rc;
}

json_object *
updaterun_status(sqlite3 *db, const struct conf *c, int limit)
{
	static const char *const cols[] = { "id", "role", "peer", "peer_node",
	    "release", "state", "detail", "started", "updated", "by" };
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	struct update_cfg u;
	sqlite3_stmt *st = NULL;

	update_cfg_init(&u, c);
	json_object_object_add(o, "app_dir", json_object_new_string(u.app_dir));
	json_object_object_add(o, "journal",
	    json_object_new_boolean(update_journal_exists(&u)));
	json_object_object_add(o, "backups", update_backups(&u));
	if (sqlite3_prepare_v2(db, "SELECT id, role, peer_name, peer_node, "
	    "release, state, detail, started, updated, by, final FROM updates "
	    "ORDER BY started DESC, rowid DESC LIMIT ?", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_int(st, 1, limit);
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_object *r = json_object_new_object();
			for (int i = 0; i < 10; i++) {
				const char *v = (const char *)
				    sqlite3_column_text(st, i);
				json_object_object_add(r, cols[i],
				    json_object_new_string(v ? v : ""));
			}
			json_object_object_add(r, "final", json_object_new_boolean(
			    sqlite3_column_int(st, 10)));
			json_object_array_add(arr, r);
		}
	}
	sqlite3_finalize(st);
	json_object_object_add(o, "updates", arr);
	return o;
}

json_object *
updaterun_latest_by_peer(sqlite3 *db)
{
	json_object *o = json_object_new_object();
	sqlite3_stmt *st = NULL;

	/* Rows oldest first: the newest per peer is added last and wins. */
	if (sqlite3_prepare_v2(db, "SELECT peer_name, state, detail, final, "
	    "updated FROM updates WHERE role = 'origin' ORDER BY started, "
	    "rowid", -1, &st, NULL) != SQLITE_OK)
		return o;
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "state", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 1)));
		json_object_object_add(r, "detail", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 2)));
		json_object_object_add(r, "final", json_object_new_boolean(
		    sqlite3_column_int(st, 3)));
		json_object_object_add(r, "updated", json_object_new_string(
		    (const char *)sqlite3_column_text(st, 4)));
		json_object_object_add(o, (const char *)sqlite3_column_text(st,
		    0), r);
	}
	sqlite3_finalize(st);
	return o;
}
