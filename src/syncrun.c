/* syncrun.c - the sync engine's transport over signed peer requests, and the logged run. */
#include "syncrun.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbsync.h"
#include "events.h"
#include "files.h"
#include "fpath.h"
#include "jget.h"
#include "locks.h"
#include "log.h"
#include "peer.h"
#include "hlc.h"
#include "tm.h"
#include "util.h"
#include "wake.h"

struct link {
	const struct store_identity	*self;
	const struct peer		*peer;
	sqlite3				*state;
	int64_t				 token;	/* database_sync lease, 0: none */
	char				 owner[32];	/* of the lease */
	const struct conf		*conf;
	int64_t				 progress_ms;	/* last progress event */
	int64_t				 files_total;	/* of the current page */
	int				 no_bundle;	/* peer lacks the route */
};

#define PROGRESS_EVERY_MS	200	/* live progress, not a flood */

static void (*progress_fn)(const char *, const struct sync_counts *);

void
syncrun_on_progress(void (*fn)(const char *, const struct sync_counts *))
{
	progress_fn = fn;
}

/* A "sync-progress" event for open dashboards: what moved so far. */
static void
t_progress(void *arg, const struct sync_counts *n)
{
	struct link *l = arg;
	int64_t now = tm_now_ms();
	json_object *ev;

	if (l->conf == NULL || now - l->progress_ms < PROGRESS_EVERY_MS)
		return;
	l->progress_ms = now;
	if (progress_fn != NULL)
		progress_fn(l->peer->name, n);
	ev = json_object_new_object();
	json_object_object_add(ev, "peer", json_object_new_string(l->peer->name));
	json_object_object_add(ev, "sent", json_object_new_int64(n->sent));
	json_object_object_add(ev, "received", json_object_new_int64(n->received));
	json_object_object_add(ev, "files_done", json_object_new_int64(
	    n->files_sent + n->files_received));
	json_object_object_add(ev, "files_total",
	    json_object_new_int64(l->files_total));
	json_object_object_add(ev, "bytes", json_object_new_int64(n->bytes));
	events_publish(l->conf, l->state, "sync-progress", ev);
}

/* Where the queue view keeps what a peer has of us. */
static void
queue_key(char *buf, size_t bufsz, const char *what, const char *node,
    const char *db)
{
	util_fmt(buf, bufsz, "queue/%s/%s/%s", what, node, db ? db : "");
}

/* Signed request with a JSON body (may be NULL); the answer, whatever
 * its status, in *resp.  -1 with the reason when there is none. */
static int
call_raw(struct link *l, const char *method, const char *uri,
    json_object *body, struct peer_resp *resp, char *err, size_t errsz)
{
	const char *b = body ? json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN) : NULL;

	if (body != NULL && b == NULL) {
		memset(resp, 0, sizeof(*resp));
		util_fmt(err, errsz, "out of memory");
		return -1;
	}
	if (peer_call(l->self, l->peer, method, uri, b, b ? strlen(b) : 0,
	    resp) == -1) {
		util_fmt(err, errsz, "%s", resp->err);
		return -1;
	}
	return 0;
}

/* Signed request, JSON answer (2xx) into *out; -1 with the reason. */
static int
call_json(struct link *l, const char *method, const char *uri,
    json_object *body, json_object **out, char *err, size_t errsz)
{
	struct peer_resp resp;

	*out = NULL;
	if (call_raw(l, method, uri, body, &resp, err, errsz) == -1)
		return -1;
	if (resp.status < 200 || resp.status > 299) {
		util_fmt(err, errsz, "%s answered %ld: %s", l->peer->name,
		    resp.status, resp.err);
		peer_resp_free(&resp);
		return -1;
	}
	*out = resp.body ? json_tokener_parse(resp.body) : NULL;
	peer_resp_free(&resp);
	if (*out == NULL || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		util_fmt(err, errsz, "%s answered with malformed JSON",
		    l->peer->name);
		return -1;
	}
	return 0;
}

static int
t_changes(void *arg, const char *db, json_object *since, int limit,
    json_object **batch, char *err, size_t errsz)
{
	char uri[20000], q[1024], *cur = since ? sync_vv_encode(since) : NULL;
	int rc;

	if ((since != NULL && cur == NULL) || util_urlencode(q, sizeof(q), db, 1) == -1 ||
	    util_fmt(uri, sizeof(uri), "/api/sync/changes?db=%s&limit=%d&"
	    "wire=%d&since=%s", q, limit, DBSYNC_WIRE, cur ? cur : "") == -1) {
		free(cur);
		util_fmt(err, errsz, "cursor too large");
		return -1;
	}
	free(cur);
	rc = call_json(arg, "GET", uri, NULL, batch, err, errsz);
	return rc;
}

static int
t_vv(void *arg, const char *db, json_object **vv, int *wire, char *err,
    size_t errsz)
{
	json_object *o = NULL, *v;

	if (t_changes(arg, db, NULL, 0, &o, err, errsz) == -1)
		return -1;
	/* A peer that does not say reads wire 1 only. */
	*wire = (int)jget_int(o, "wire", 1);
	if (!json_object_object_get_ex(o, "vv", &v) ||
	    !json_object_is_type(v, json_type_object)) {
		json_object_put(o);
		util_fmt(err, errsz, "peer sent no version vector");
		return -1;
	}
	*vv = json_object_get(v);
	json_object_put(o);
	return 0;
}

static int
t_receive(void *arg, const char *db, json_object *batch, json_object **res,
    char *err, size_t errsz)
{
	char uri[1200], q[1024];

	if (util_urlencode(q, sizeof(q), db, 1) == -1 || util_fmt(uri, sizeof(uri),
	    "/api/sync/receive-changes?db=%s", q) == -1) {
		util_fmt(err, errsz, "database name too long");
		return -1;
	}
	return call_json(arg, "POST", uri, batch, res, err, errsz);
}

void
syncrun_summary(char *buf, size_t bufsz, const struct sync_counts *n)
{
	snprintf(buf, bufsz, "%lld sent, %lld received, %lld conflicts; "
	    "files: %lld sent, %lld received, %lld conflicts",
	    (long long)n->sent, (long long)n->received,
	    (long long)n->conflicts, (long long)n->files_sent,
	    (long long)n->files_received, (long long)n->files_conflicts);
}

/* ---- files ------------------------------------------------------------- */

static int
fetch_from_peer(void *arg, const char *path, const char *hash, int64_t size,
    struct files_sink *out, char *err, size_t errsz)
{
	struct link *l = arg;
	char uri[4 * FPATH_MAX], q[3 * FPATH_MAX + 1];

	(void)hash;	/* verified by the engine after the transfer */
	if (util_urlencode(q, sizeof(q), path, 1) == -1 || util_fmt(uri, sizeof(uri),
	    "/api/sync/files/download?path=%s", q) == -1) {
		util_fmt(err, errsz, "path too long");
		return -1;
	}
	return peer_download(l->self, l->peer, uri, out, size, err, errsz);
}

static int
fetch_many_from_peer(void *arg, size_t n, const char *const *paths,
    char **body_out, size_t *len, char *err, size_t errsz)
{
	struct link *l = arg;
	json_object *body, *arr;
	struct peer_resp resp;
	int rc = -1;

	*body_out = NULL;
	*len = 0;
	if (l->no_bundle) {
		util_fmt(err, errsz, "%s has no bundle route", l->peer->name);
		return -1;
	}
	if ((body = json_object_new_object()) == NULL ||
	    (arr = json_object_new_array_ext((int)n)) == NULL) {
		json_object_put(body);
		util_fmt(err, errsz, "out of memory");
		return -1;
	}
	json_object_object_add(body, "paths", arr);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, json_object_new_string(paths[i]));
	if (call_raw(l, "POST", "/api/sync/files/bundle", body, &resp, err,
	    errsz) == -1)
		goto done;
	if (resp.status == 404 || resp.status == 405) {
		/* A peer from before bundles: one by one from now on. */
		l->no_bundle = 1;
		util_fmt(err, errsz, "%s has no bundle route", l->peer->name);
	} else if (resp.status != 200) {
		util_fmt(err, errsz, "%s answered %ld: %s", l->peer->name,
		    resp.status, resp.err);
	} else {
		*body_out = resp.body;
		*len = resp.len;
		resp.body = NULL;
		rc = 0;
	}
	peer_resp_free(&resp);
done:
	json_object_put(body);
	return rc;
}

/* A manifest page asked for (on a thread of its own while the previous
 * page installs). */
struct page_call {
	struct link	*l;
	char		 uri[256];
	json_object	*m;
	int		 rc;
	char		 why[512];
};

static void *
page_main(void *arg)
{
	struct page_call *p = arg;

	p->rc = call_json(p->l, "GET", p->uri, NULL, &p->m, p->why,
	    sizeof(p->why));
	return NULL;
}

/*
 * Pull every manifest page after our cursor for this peer.  Page k+1 is
 * asked for from page k's "next" while page k installs: a page that
 * installs completely moves the cursor exactly there, and one that does
 * not ends the pull.
 */
static int
files_pull_from(struct link *l, sqlite3 *state, const struct files_cfg *fc,
    struct sync_counts *n, char *err, size_t errsz)
{
	struct files_fetcher f = { .fetch = fetch_from_peer,
	    .fetch_many = fetch_many_from_peer, .arg = l };
	struct page_call pc = { .l = l };
	char why[512];
	json_object *m = NULL;
	int64_t cursor;
	int ret = -1;

	if (files_cursor(state, l->peer->node_id, &cursor, why,
	    sizeof(why)) != FILES_OK) {
		util_fmt(err, errsz, "files: %s", why);
		return -1;
	}
	util_fmt(pc.uri, sizeof(pc.uri), "/api/sync/files/manifest?since=%lld"
	    "&limit=%d&scan=1", (long long)cursor, FILES_MANIFEST_MAX);
	page_main(&pc);
	for (int page = 0; page < SYNC_MAX_ROUNDS; page++) {
		struct files_sync_stats st;
		json_object *ents;
		enum files_rc rc;
		struct util_bg bg;
		int more, want;

		if (pc.rc == -1) {
			util_fmt(err, errsz, "files: %s", pc.why);
			goto done;
		}
		m = pc.m;
		pc.m = NULL;
		if (json_object_object_get_ex(m, "entries", &ents))
			l->files_total += (int64_t)json_object_array_length(ents);
		more = jget_bool(m, "more");
		if ((want = more && page + 1 < SYNC_MAX_ROUNDS)) {
			util_fmt(pc.uri, sizeof(pc.uri), "/api/sync/files/"
			    "manifest?since=%lld&limit=%d",
			    (long long)jget_int(m, "next", 0),
			    FILES_MANIFEST_MAX);
			pc.rc = -1;
			util_bg_run(&bg, page_main, &pc);
		}
		memset(&st, 0, sizeof(st));
		rc = files_pull(state, fc, l->peer->node_id, m, &f, &st, why,
		    sizeof(why));
		if (want)
			util_bg_wait(&bg);
		json_object_put(m);
		m = NULL;
		n->files_received += st.received + st.removed;
		n->files_conflicts += st.conflicts;
		n->bytes += st.bytes;
		t_progress(l, n);
		if (rc != FILES_OK) {
			util_fmt(err, errsz, "files from %s: %s", l->peer->name,
			    why);
			goto done;
		}
		if (!more)
			break;
	}
	ret = 0;
done:
	json_object_put(pc.m);
	return ret;
}

/*
 * Drop from manifest page m the versions peer_id made itself: it has them
 * (or newer), so neither their content nor their entries need to travel
 * back -- after a big pull, the push would otherwise hand every pulled
 * entry straight back to be checked.  The page keeps its cursor.  A peer
 * that lost its folder still gets them by pulling, which is not filtered.
 * Returns the page's (new) entries array.
 */
static json_object *
drop_own(json_object *m, const char *peer_id)
{
	json_object *entries, *keep = json_object_new_array(), *v;
	size_t i, n;

	json_object_object_get_ex(m, "entries", &entries);
	if (keep == NULL)
		return entries;
	n = json_object_array_length(entries);
	for (i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(entries, i);
		if (json_object_object_get_ex(e, "origin", &v) &&
		    strcmp(json_object_get_string(v), peer_id) == 0)
			continue;
		json_object_array_add(keep, json_object_get(e));
	}
	json_object_object_add(m, "entries", keep);
	return keep;
}

/* Tests only: MESHSYNC_TEST_STOP_AT=upload stops this process (SIGSTOP)
 * before each upload, so that a test can rewrite the file in between, as
 * an application saving in place could at any time. */
static void
upload_stop_point(void)
{
	const char *want = getenv("MESHSYNC_TEST_STOP_AT");

	if (want != NULL && strcmp(want, "upload") == 0)
		raise(SIGSTOP);
}

/* Whether open file fd no longer holds the version an entry of `size`
 * bytes describes: its size differs, or it was written since `before`
 * (its stat when opened). */
static int
written_since(int fd, const struct stat *before, int64_t size)
{
	struct stat now;

	if (fstat(fd, &now) == -1)
		return 0;
	return now.st_size != size ||
	    now.st_mtim.tv_sec != before->st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != before->st_mtim.tv_nsec ||
	    now.st_size != before->st_size;
}

/* Push: upload the content of every changed file the peer has not pulled
 * yet, then hand it the manifest page (deletes, dirs, its cursor). */
static int
files_push_to(struct link *l, sqlite3 *state, const struct conf *c,
    struct sync_counts *n, char *err, size_t errsz)
{
	char why[512];
	json_object *cur = NULL;
	int64_t since;
	int root;

	if (call_json(l, "GET", "/api/sync/files/cursor", NULL, &cur, why,
	    sizeof(why)) == -1) {
		util_fmt(err, errsz, "files: %s", why);
		return -1;
	}
	since = jget_int(cur, "lseq", 0);
	json_object_put(cur);
	if ((root = open(c->instance_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		util_fmt(err, errsz, "instance folder: %s", strerror(errno));
		return -1;
	}
	for (int page = 0; page < SYNC_MAX_ROUNDS; page++) {
		json_object *m = NULL, *entries, *res = NULL, *v;
		size_t ne;
		int more;

		if (files_manifest(state, since, FILES_MANIFEST_MAX, &m, why,
		    sizeof(why)) != FILES_OK) {
			util_fmt(err, errsz, "files: %s", why);
			goto fail;
		}
		json_object_object_get_ex(m, "entries", &entries);
		if (json_object_array_length(entries) == 0) {
			json_object_put(m);
			break;
		}
		entries = drop_own(m, l->peer->node_id);
		ne = json_object_array_length(entries);
		for (size_t i = 0; i < ne; i++) {
			json_object *e = json_object_array_get_idx(entries, i);
			const char *path;
			char uri[24 * 1024], *b64;
			struct peer_resp resp;
			struct stat before;
			int64_t size;
			int fd, up;

			json_object_object_get_ex(e, "deleted", &v);
			if (json_object_get_boolean(v))
				continue;
			json_object_object_get_ex(e, "kind", &v);
			if (strcmp(json_object_get_string(v), "file") != 0)
				continue;
			json_object_object_get_ex(e, "path", &v);
			path = json_object_get_string(v);
			size = jget_int(e, "size", 0);
			upload_stop_point();
			if ((fd = fpath_open(root, path, O_RDONLY, 0)) == -1)
				continue;	/* gone since the scan: next time */
			if (fstat(fd, &before) == -1)
				memset(&before, 0, sizeof(before));
			b64 = sync_b64_encode(e);
			if (b64 == NULL || util_fmt(uri, sizeof(uri),
			    "/api/sync/files/upload?entry=%s", b64) == -1) {
				free(b64);
				close(fd);
				continue;
			}
			free(b64);
			up = peer_upload(l->self, l->peer, uri, fd, size,
			    &resp) == 0 && resp.status == 200;
			if (!up && written_since(fd, &before, size)) {
				/*
				 * Being written (cp, an app saving in place):
				 * what was read is not this entry's version.
				 * The scan gives the new one a later entry, so
				 * this one leaves the page instead of failing
				 * it at the peer.
				 */
				log_info("%s changed while it was uploaded to "
				    "%s: the next round sends it", path,
				    l->peer->name);
				json_object_array_del_idx(entries, i, 1);
				i--;
				ne--;
			} else if (!up)
				log_warnx("upload of %s to %s failed: %s", path,
				    l->peer->name, resp.err);
			else {
				n->files_sent++;
				n->bytes += size;
				t_progress(l, n);
			}
			peer_resp_free(&resp);
			close(fd);
		}
		more = jget_bool(m, "more");
		since = jget_int(m, "next", 0);
		if (call_json(l, "POST", "/api/sync/files/apply", m, &res, why,
		    sizeof(why)) == -1) {
			json_object_put(m);
			util_fmt(err, errsz, "files to %s: %s", l->peer->name,
			    why);
			goto fail;
		}
		json_object_put(m);
		/* Contents were counted as they were uploaded; the page
		 * itself carries deletes. */
		n->files_sent += jget_int(res, "received", 0) + jget_int(res, "removed", 0);
		n->files_conflicts += jget_int(res, "conflicts", 0);
		if (json_object_object_get_ex(res, "partial", &v)) {
			util_fmt(err, errsz, "files to %s: %s", l->peer->name,
			    json_object_get_string(v));
			json_object_put(res);
			goto fail;
		}
		json_object_put(res);
		if (!more)
			break;
	}
	{
		char key[256], v[32];
		queue_key(key, sizeof(key), "files", l->peer->node_id, NULL);
		util_fmt(v, sizeof(v), "%lld", (long long)since);
		store_setting_set(state, key, v);
	}
	close(root);
	return 0;
fail:
	close(root);
	return -1;
}

/* Give back the lease t_may_apply took (if any). */
static void
t_applied(void *arg)
{
	struct link *l = arg;

	if (l->token != 0)
		syncrun_unlease(l->state, l->owner, l->token);
	l->token = 0;
}

/*
 * The apply fence: a pulled batch is applied only by the holder of the
 * database_sync lease (one applier per node at a time), taken for that
 * apply alone.  Never held across a network wait: a peer that stops
 * answering mid-sync must not hold up the syncs with the others.
 */
static int
t_may_apply(void *arg, char *err, size_t errsz)
{
	struct link *l = arg;

	t_applied(l);	/* a lease not given back: never the case */
	return syncrun_lease(l->state, l->owner, SYNCRUN_LEASE_WAIT_MS,
	    &l->token, err, errsz);
}

/* Is owner "kind:pid" a process of ours that no longer exists? */
static int
holder_dead(const char *owner)
{
	const char *colon = strrchr(owner, ':'), *es;
	long long pid;

	if (colon == NULL || (strncmp(owner, "sync:", 5) != 0 &&
	    strncmp(owner, "receive:", 8) != 0) ||
	    util_strtonum(colon + 1, 1, 1 << 30, &pid, &es) == -1)
		return 0;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

int
syncrun_lease(sqlite3 *state, const char *owner, int wait_ms,
    int64_t *token, char *err, size_t errsz)
{
	struct locks_lease lease;
	enum locks_result r;
	int64_t deadline = tm_now_ms() + wait_ms;
	long nap_ms = 1;

	for (;;) {
		r = locks_acquire(state, SYNCRUN_LEASE, owner,
		    SYNCRUN_LEASE_TTL_S, tm_now_ms(), &lease, err, errsz);
		if (r == LOCKS_OK) {
			*token = lease.token;
			return 0;
		}
		/* Every holder of this lease is a process of this node named
		 * "kind:pid"; one that died (kill -9, a crash) must not block
		 * syncs until its lease expires. */
		if (r == LOCKS_HELD && holder_dead(lease.owner)) {
			struct locks_lease gone;
			log_warnx("taking over %s from %s, which is gone",
			    SYNCRUN_LEASE, lease.owner);
			locks_release(state, SYNCRUN_LEASE, lease.owner,
			    lease.token, tm_now_ms(), &gone, err, errsz);
			continue;
		}
		if (r != LOCKS_HELD || tm_now_ms() >= deadline) {
			if (r == LOCKS_HELD)
				util_fmt(err, errsz, "another sync is applying "
				    "changes here (%s holds %s)", lease.owner,
				    SYNCRUN_LEASE);
			return -1;
		}
		/* A pushed batch waits here for the one before it, which
		 * applies in tens of ms: look again soon, then less often. */
		{
			struct timespec ts = { 0, nap_ms * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (nap_ms < 20)
			nap_ms *= 2;
	}
}

void
syncrun_unlease(sqlite3 *state, const char *owner, int64_t token)
{
	char err[128];
	struct locks_lease lease;

	locks_release(state, SYNCRUN_LEASE, owner, token, tm_now_ms(), &lease,
	    err, sizeof(err));
}

struct db_job {
	const struct conf		*conf;
	const struct store_identity	*self;
	const struct sync_transport	*t;
	struct syncrun_result		*res;
	sqlite3				*state;
	const struct peer		*peer;
	int				 dirs;		/* SYNC_PULL | SYNC_PUSH */
};

static int
sync_one_db(const char *name, void *arg)
{
	struct db_job *j = arg;
	char path[UTIL_PATH_MAX], why[512];
	sqlite3 *app = NULL;
	int rc;

	if (sync_db_path(j->conf, name, path, sizeof(path)) == -1 ||
	    dbsync_open(path, &app, why, sizeof(why)) == -1) {
		util_fmt(j->res->error, sizeof(j->res->error), "%s: %s", name,
		    why);
		sqlite3_close(app);
		return -1;
	}
	{
		json_object *pvv = NULL;
		char key[256];

		rc = sync_db(app, name, j->self->node_id,
		    (int64_t)j->conf->max_clock_skew * 1000, j->t, j->dirs,
		    &j->res->counts, &pvv, j->res->error, sizeof(j->res->error));
		if (rc == 0 && pvv != NULL) {
			queue_key(key, sizeof(key), "vv", j->peer->node_id, name);
			store_setting_set(j->state, key,
			    json_object_to_json_string_ext(pvv,
			    JSON_C_TO_STRING_PLAIN));
		}
		json_object_put(pvv);
	}
	sqlite3_close(app);
	return rc;
}

static void add_counts(json_object *o, const struct sync_counts *n);
static json_object *files_json(const struct sync_counts *n);

/* The live "sync" event an open dashboard shows as its result line. */
static void
publish_result(const struct conf *c, sqlite3 *state, const struct peer *p,
    const struct syncrun_result *res, const char *summary)
{
	json_object *ev = json_object_new_object();

	json_object_object_add(ev, "peer", json_object_new_string(p->name));
	json_object_object_add(ev, "ok", json_object_new_boolean(res->ok));
	add_counts(ev, &res->counts);
	json_object_object_add(ev, "files", files_json(&res->counts));
	if (summary != NULL)
		json_object_object_add(ev, "summary",
		    json_object_new_string(summary));
	else
		json_object_object_add(ev, "error",
		    json_object_new_string(res->error));
	events_publish(c, state, "sync", ev);
}

int
syncrun_peer(sqlite3 *state, const struct conf *c,
    const struct store_identity *id, struct peer *p, int what,
    struct syncrun_result *res)
{
	struct link l = { .self = id, .peer = p, .state = state, .conf = c };
	struct sync_transport t = { .vv = t_vv, .changes = t_changes,
	    .receive = t_receive, .may_apply = t_may_apply,
	    .applied = t_applied,
	    .progress = t_progress, .arg = &l };
	struct db_job job = { .conf = c, .self = id, .t = &t, .res = res,
	    .state = state, .peer = p,
	    .dirs = ((what & SYNCRUN_DB_PULL) ? SYNC_PULL : 0) |
	    ((what & SYNCRUN_DB_PUSH) ? SYNC_PUSH : 0) };
	char sum[128];

	struct files_cfg fc;
	struct files_scan_stats scan;

	memset(res, 0, sizeof(*res));
	memset(&fc, 0, sizeof(fc));
	fc.root = c->instance_dir;
	fc.self = id->node_id;
	fc.ignore = c->ignore;
	fc.databases = c->databases;
	fc.max_conflicts = c->max_conflicts;
	memset(&scan, 0, sizeof(scan));
	if (what == SYNCRUN_ALL) {
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "peer", json_object_new_string(p->name));
		events_publish(c, state, "sync-start", ev);
	}
	/* Each apply of pulled changes takes the database_sync lease
	 * (t_may_apply); its owner name lets a successor see we died. */
	util_fmt(l.owner, sizeof(l.owner), "sync:%ld", (long)getpid());
	if ((job.dirs != 0 && sync_db_each(c, sync_one_db, &job) == -1) ||
	    ((what & (SYNCRUN_FILES_PULL | SYNCRUN_FILES_PUSH)) &&
	    files_scan(state, &fc, &scan, res->error,
	    sizeof(res->error)) != FILES_OK) ||
	    ((what & SYNCRUN_FILES_PULL) && files_pull_from(&l, state, &fc,
	    &res->counts, res->error, sizeof(res->error)) == -1) ||
	    ((what & SYNCRUN_FILES_PUSH) && files_push_to(&l, state, c,
	    &res->counts, res->error, sizeof(res->error)) == -1)) {
		t_applied(&l);
		log_warnx("sync with %s failed: %s", p->name, res->error);
		store_event(state, "warn", "sync", p->name, "sync failed: %s",
		    res->error);
		peers_note(state, p->id, "error", res->error, -1);
		publish_result(c, state, p, res, NULL);
		return -1;
	}
	res->ok = 1;
	peers_note(state, p->id, "ok", NULL, -1);
	/* What we pulled goes on to our other peers at once (relay), and
	 * the application hears of it (hook): the worker does both. */
	if (res->counts.received + res->counts.files_received > 0)
		wake_applied_from(c, p->node_id);
	/* An instant push that found nothing to move is not news. */
	if (what != SYNCRUN_ALL && res->counts.sent + res->counts.received +
	    res->counts.files_sent + res->counts.files_received == 0)
		return 0;
	syncrun_summary(sum, sizeof(sum), &res->counts);
	log_info("sync with %s: %s", p->name, sum);
	store_event(state, "info", "sync", p->name, "%s", sum);
	publish_result(c, state, p, res, sum);
	return 0;
}

static void
add_counts(json_object *o, const struct sync_counts *n)
{
	json_object_object_add(o, "sent", json_object_new_int64(n->sent));
	json_object_object_add(o, "received", json_object_new_int64(n->received));
	json_object_object_add(o, "conflicts", json_object_new_int64(n->conflicts));
}

static json_object *
files_json(const struct sync_counts *n)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "sent", json_object_new_int64(n->files_sent));
	json_object_object_add(o, "received",
	    json_object_new_int64(n->files_received));
	json_object_object_add(o, "conflicts",
	    json_object_new_int64(n->files_conflicts));
	return o;
}

json_object *
syncrun_all(sqlite3 *state, const struct conf *c,
    const struct store_identity *id, const char *only)
{
	struct sync_counts total = { 0 };
	json_object *o, *arr, *peers;
	struct peer one;
	int failed = 0;
	size_t n;

	if (only != NULL && peers_find(state, only, &one) != 0)
		return NULL;
	peers = peers_list(state);
	arr = json_object_new_array();
	n = peers ? json_object_array_length(peers) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *pj = json_object_array_get_idx(peers, i), *v, *r;
		struct syncrun_result res;
		struct peer p;
		char sum[128];

		json_object_object_get_ex(pj, "node_id", &v);
		if (peers_by_node(state, json_object_get_string(v), &p) != 0)
			continue;
		if (only != NULL ? p.id != one.id : !p.enabled)
			continue;
		r = json_object_new_object();
		json_object_object_add(r, "peer", json_object_new_string(p.name));
		if (syncrun_peer(state, c, id, &p, SYNCRUN_ALL, &res) == -1) {
			failed++;
			json_object_object_add(r, "error",
			    json_object_new_string(res.error));
		}
		json_object_object_add(r, "ok", json_object_new_boolean(res.ok));
		add_counts(r, &res.counts);
		json_object_object_add(r, "files", files_json(&res.counts));
		syncrun_summary(sum, sizeof(sum), &res.counts);
		json_object_object_add(r, "summary", json_object_new_string(sum));
		total.sent += res.counts.sent;
		total.received += res.counts.received;
		total.conflicts += res.counts.conflicts;
		total.files_sent += res.counts.files_sent;
		total.files_received += res.counts.files_received;
		total.files_conflicts += res.counts.files_conflicts;
		json_object_array_add(arr, r);
	}
	json_object_put(peers);
	o = json_object_new_object();
	json_object_object_add(o, "peers", arr);
	add_counts(o, &total);
	json_object_object_add(o, "files", files_json(&total));
	json_object_object_add(o, "failed", json_object_new_int(failed));
	return o;
}

/* ---- bootstrap and compaction ------------------------------------------ */

static int
record_tracked(sqlite3 *state, sqlite3 *app, const char *db)
{
	sqlite3_stmt *st = NULL, *ins = NULL;
	char now[TM_RFC3339_LEN];
	int rc = -1;

	tm_rfc3339_s(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(app, "SELECT tbl FROM _meshsync_tracked", -1,
	    &st, NULL) != SQLITE_OK || sqlite3_prepare_v2(state, "INSERT OR "
	    "IGNORE INTO tracked(db, tbl, immediate, since) VALUES (?, ?, 0, ?)",
	    -1, &ins, NULL) != SQLITE_OK)
		goto done;
	while (sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_bind_text(ins, 1, db, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(st,
		    0), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 3, now, -1, SQLITE_STATIC);
		sqlite3_step(ins);
		sqlite3_reset(ins);
	}
	rc = 0;
done:
	sqlite3_finalize(st);
	sqlite3_finalize(ins);
	return rc;
}

/* Download one snapshot beside its final place and move it in. */
static int
bootstrap_one(sqlite3 *state, struct conf *c, struct link *l,
    const char *db, FILE *out, char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], tmp[UTIL_PATH_MAX], uri[1200], q[1024];
	char list[CONF_VAL_MAX], why[256];
	char hex[FILES_HASH_HEX + 1];
	struct files_sink sink;
	sqlite3 *app = NULL;
	struct stat sb;
	int fd = -1, rc = -1;

	if (*db == '/' || strstr(db, "..") != NULL ||
	    util_fmt(path, sizeof(path), "%s/%s", c->instance_dir, db) == -1) {
		util_fmt(err, errsz, "%s offers a bad database name", l->peer->name);
		return -1;
	}
	if (lstat(path, &sb) == 0) {
		if (out != NULL)
			fprintf(out, "  %s exists here: kept (sync merges it)\n", db);
		return 0;
	}
	util_strlcpy(tmp, path, sizeof(tmp));
	*strrchr(tmp, '/') = '\0';
	if (util_mkdirs(tmp, 0755) == -1 || util_fmt(tmp + strlen(tmp),
	    sizeof(tmp) - strlen(tmp), "/.meshsync-tmp-boot-XXXXXX") == -1 ||
	    (fd = mkstemp(tmp)) == -1) {
		util_fmt(err, errsz, "temp file for %s: %s", db, strerror(errno));
		return -1;
	}
	files_sink_init(&sink, fd);
	if (util_urlencode(q, sizeof(q), db, 1) == -1 || util_fmt(uri, sizeof(uri),
	    "/api/sync/database?db=%s", q) == -1 ||
	    peer_download(l->self, l->peer, uri, &sink, -1, why,
	    sizeof(why)) == -1) {
		files_sink_drop(&sink);
		util_fmt(err, errsz, "snapshot of %s: %s", db, why);
		goto done;
	}
	/* The hash is not needed: quick_check below vets the snapshot. */
	if (files_sink_final(&sink, hex, sizeof(hex)) == -1 || fsync(fd) == -1) {
		util_fmt(err, errsz, "snapshot of %s: %s", db, strerror(errno));
		goto done;
	}
	if (sqlite3_open_v2(tmp, &app, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    store_scalar(app, "SELECT count(*) FROM _meshsync_tracked") < 0) {
		util_fmt(err, errsz, "snapshot of %s is not a meshsync database",
		    db);
		goto done;
	}
	{
		sqlite3_stmt *st = NULL;
		int ok = sqlite3_prepare_v2(app, "PRAGMA quick_check", -1, &st,
		    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
		    strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
		sqlite3_finalize(st);
		if (!ok) {
			util_fmt(err, errsz, "snapshot of %s is damaged", db);
			goto done;
		}
	}
	/* link() fails if the name appeared meanwhile: never replace. */
	if (link(tmp, path) == -1) {
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
		goto done;
	}
	record_tracked(state, app, db);
	if (sync_db_path(c, db, why, sizeof(why)) == -1) {
		if (util_fmt(list, sizeof(list), "%s%s%s", c->databases,
		    *c->databases ? " " : "", db) == -1 ||
		    conf_update_file(c, "databases", list, err, errsz) == -1)
			goto done;
		util_strlcpy(c->databases, list, sizeof(c->databases));
	}
	if (out != NULL)
		fprintf(out, "  %s: started from %s's snapshot\n", db,
		    l->peer->name);
	store_event(state, "info", "sync", l->peer->name, "bootstrapped %s "
	    "from a snapshot", db);
	rc = 0;
done:
	sqlite3_close(app);
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return rc;
}

int
syncrun_bootstrap(sqlite3 *state, struct conf *c,
    const struct store_identity *id, const struct peer *p, FILE *out,
    char *err, size_t errsz)
{
	struct link l = { .self = id, .peer = p };
	json_object *hello = NULL;
	const char *dbs;
	char name[UTIL_PATH_MAX];
	int rc = 0;

	if (call_json(&l, "POST", "/api/sync/hello", NULL, &hello, err,
	    errsz) == -1)
		return -1;
	dbs = jget_str(hello, "databases", "");
	while (rc == 0 && (dbs = util_list_next(dbs, name, sizeof(name))) !=
	    NULL)
		rc = bootstrap_one(state, c, &l, name, out, err, errsz);
	json_object_put(hello);
	return rc;
}

struct compact_job {
	sqlite3				*state;
	const struct conf		*conf;
	const struct store_identity	*self;
	long long			 removed;
	char				*err;
	size_t				 errsz;
};

/*
 * What peer p had of database `name` at the end of its last successful
 * sync with us (its answers report its vector after each commit), or
 * NULL.  It can only have grown since, so compacting up to it is safe
 * while p is away; a laptop that is off must not stop every other node
 * from compacting.
 */
static json_object *
last_acked(sqlite3 *state, const struct peer *p, const char *name)
{
	char key[256], buf[16384];
	json_object *vv;

	queue_key(key, sizeof(key), "vv", p->node_id, name);
	if (store_setting_get(state, key, buf, sizeof(buf)) != 0 ||
	    (vv = json_tokener_parse(buf)) == NULL)
		return NULL;
	if (!json_object_is_type(vv, json_type_object)) {
		json_object_put(vv);
		return NULL;
	}
	log_info("%s: %s cannot be asked: compacting up to what it had at "
	    "its last sync", name, p->name);
	return vv;
}

/* The acknowledged vector: per origin, the minimum over every peer. */
static int
compact_db(const char *name, void *arg)
{
	struct compact_job *j = arg;
	json_object *acked = NULL, *peers = peers_list(j->state);
	size_t n = peers ? json_object_array_length(peers) : 0;
	char path[UTIL_PATH_MAX], why[512];
	sqlite3 *app = NULL;
	int64_t removed = 0;
	int rc = -1;

	if (n == 0) {
		/* Nobody to wait for would mean "compact everything", and a
		 * peer added later could then never catch up from the log. */
		json_object_put(peers);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *pj = json_object_array_get_idx(peers, i), *v, *pvv;
		struct peer p;
		struct link l = { .self = j->self, .peer = &p };
		int wire;

		json_object_object_get_ex(pj, "node_id", &v);
		if (peers_by_node(j->state, json_object_get_string(v), &p) != 0)
			goto done;
		if (t_vv(&l, name, &pvv, &wire, why, sizeof(why)) == -1 &&
		    (pvv = last_acked(j->state, &p, name)) == NULL) {
			util_fmt(j->err, j->errsz, "%s: cannot ask %s (%s), "
			    "and it has not synced since this node knows it: "
			    "nothing compacted", name, p.name, why);
			goto done;
		}
		if (acked == NULL) {
			acked = pvv;
			continue;
		}
		/* Origins a peer has never seen count as 0 for it. */
		json_object_object_foreach(acked, origin, seq) {
			json_object *theirs;
			int64_t t = json_object_object_get_ex(pvv, origin,
			    &theirs) ? json_object_get_int64(theirs) : 0;
			if (t < json_object_get_int64(seq))
				json_object_set_int64(seq, t);
		}
		json_object_put(pvv);
	}
	if (sync_db_path(j->conf, name, path, sizeof(path)) == -1 ||
	    dbsync_open(path, &app, why, sizeof(why)) == -1 ||
	    dbsync_compact(app, acked, &removed, why, sizeof(why)) != DBSYNC_OK) {
		util_fmt(j->err, j->errsz, "%s: %s", name, why);
		goto done;
	}
	j->removed += removed;
	rc = 0;
done:
	sqlite3_close(app);
	json_object_put(acked);
	json_object_put(peers);
	return rc;
}

long long
syncrun_compact(sqlite3 *state, const struct conf *c,
    const struct store_identity *id, char *err, size_t errsz)
{
	struct compact_job j = { .state = state, .conf = c, .self = id,
	    .err = err, .errsz = errsz };

	if (sync_db_each(c, compact_db, &j) == -1)
		return -1;
	if (j.removed > 0)
		store_event(state, "info", "sync", NULL, "compacted %lld change "
		    "log entries every peer has", j.removed);
	return j.removed;
}

/* ---- the queue view ---------------------------------------------------- */

struct queue_job {
	const struct conf	*conf;
	sqlite3			*state;
	const char		*node;
	json_object		*rows;		/* table -> count */
	int64_t			 total;
	int64_t			 oldest_ms;	/* 0: nothing pending */
};

static int
queue_db(const char *name, void *arg)
{
	struct queue_job *q = arg;
	char path[UTIL_PATH_MAX], key[256], vv[8192], why[256];
	sqlite3_stmt *st = NULL;
	sqlite3 *app = NULL;

	queue_key(key, sizeof(key), "vv", q->node, name);
	if (store_setting_get(q->state, key, vv, sizeof(vv)) != 0)
		util_strlcpy(vv, "{}", sizeof(vv));
	if (sync_db_path(q->conf, name, path, sizeof(path)) == -1 ||
	    dbsync_open(path, &app, why, sizeof(why)) == -1) {
		sqlite3_close(app);
		return 0;
	}
	/* Everything in our log the peer's vector does not cover, plus
	 * writes not harvested yet. */
	if (sqlite3_prepare_v2(app, "SELECT tbl, sum(min(n, seq + n - 1 - v)), "
	    "min(hlc) FROM (SELECT *, coalesce(json_extract(?1, '$.\"' || "
	    "origin || '\"'), 0) AS v FROM _meshsync_log) WHERE "
	    "seq + n - 1 > v GROUP BY tbl UNION ALL SELECT t.tbl || "
	    "' (not harvested yet)', count(*), NULL FROM _meshsync_capture c "
	    "JOIN _meshsync_tracked t ON t.tid = c.tid GROUP BY t.tbl", -1,
	    &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, vv, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t n = sqlite3_column_int64(st, 1);
			int64_t ms = sqlite3_column_type(st, 2) == SQLITE_NULL ?
			    0 : hlc_wall((uint64_t)sqlite3_column_int64(st, 2));
			char label[300];
			util_fmt(label, sizeof(label), "%s:%s", name,
			    (const char *)sqlite3_column_text(st, 0));
			json_object_object_add(q->rows, label,
			    json_object_new_int64(n));
			q->total += n;
			if (ms > 0 && (q->oldest_ms == 0 || ms < q->oldest_ms))
				q->oldest_ms = ms;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(app);
	return 0;
}

json_object *
syncrun_queue(sqlite3 *state, const struct conf *c)
{
	json_object *peers = peers_list(state), *out = json_object_new_array();
	size_t n = peers ? json_object_array_length(peers) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *pj = json_object_array_get_idx(peers, i), *v, *o;
		struct queue_job q = { .conf = c, .state = state };
		char key[256], cur[32], name[PEERS_NAME_MAX];
		sqlite3_stmt *st = NULL;
		long long files = 0, fails = 0;
		int64_t fmin = 0;

		json_object_object_get_ex(pj, "node_id", &v);
		q.node = json_object_get_string(v);
		q.rows = json_object_new_object();
		sync_db_each(c, queue_db, &q);
		queue_key(key, sizeof(key), "files", q.node, NULL);
		if (store_setting_get(state, key, cur, sizeof(cur)) != 0)
			util_strlcpy(cur, "0", sizeof(cur));
		if (sqlite3_prepare_v2(state, "SELECT count(*), min(hlc) FROM "
		    "files_index WHERE lseq > CAST(? AS INTEGER)", -1, &st,
		    NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, cur, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW) {
				files = sqlite3_column_int64(st, 0);
				if (sqlite3_column_type(st, 1) != SQLITE_NULL)
					fmin = hlc_wall((uint64_t)
					    sqlite3_column_int64(st, 1));
			}
		}
		sqlite3_finalize(st);
		json_object_object_get_ex(pj, "name", &v);
		util_strlcpy(name, json_object_get_string(v), sizeof(name));
		/* Consecutive failures: failed runs since the last success. */
		if (sqlite3_prepare_v2(state, "SELECT count(*) FROM events WHERE "
		    "kind = 'sync' AND peer = ?1 AND level != 'info' AND id > "
		    "coalesce((SELECT max(id) FROM events WHERE kind = 'sync' "
		    "AND peer = ?1 AND level = 'info'), 0)", -1, &st,
		    NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				fails = sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
		if (fmin > 0 && (q.oldest_ms == 0 || fmin < q.oldest_ms))
			q.oldest_ms = fmin;
		o = json_object_new_object();
		json_object_object_add(o, "peer", json_object_new_string(name));
		json_object_object_get_ex(pj, "connected", &v);
		json_object_object_add(o, "connected", json_object_get(v));
		json_object_object_add(o, "pending_rows", q.rows);
		json_object_object_add(o, "pending_rows_total",
		    json_object_new_int64(q.total));
		json_object_object_add(o, "pending_files",
		    json_object_new_int64(files));
		json_object_object_add(o, "oldest_pending_s", q.oldest_ms ?
		    json_object_new_int64((tm_now_ms() - q.oldest_ms) / 1000) :
		    NULL);
		json_object_object_get_ex(pj, "last_ok", &v);
		json_object_object_add(o, "last_success", json_object_get(v));
		json_object_object_get_ex(pj, "last_error", &v);
		json_object_object_add(o, "last_error", json_object_get(v));
		json_object_object_add(o, "consecutive_failures",
		    json_object_new_int64(fails));
		json_object_array_add(out, o);
	}
	json_object_put(peers);
	return out;
}
