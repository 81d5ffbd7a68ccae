/* syncrun.c - the sync engine's transport over signed peer requests, and the logged run. */
#include "syncrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbsync.h"
#include "log.h"
#include "peer.h"
#include "util.h"

struct link {
	const struct store_identity	*self;
	const struct peer		*peer;
};

/* A URL-safe copy of a database name for the query string. */
static int
qname(char *out, size_t outsz, const char *db)
{
	size_t o = 0;

	for (const char *p = db; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (o + 4 >= outsz)
			return -1;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
		    c == '/')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outsz - o, "%%%02X", c);
	}
	out[o] = '\0';
	return 0;
}

/* Signed request, JSON answer (2xx) into *out; -1 with the reason. */
static int
call_json(struct link *l, const char *method, const char *uri,
    json_object *body, json_object **out, char *err, size_t errsz)
{
	const char *b = body ? json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN) : NULL;
	struct peer_resp resp;

	*out = NULL;
	if (peer_call(l->self, l->peer, method, uri, b, b ? strlen(b) : 0,
	    &resp) == -1) {
		util_fmt(err, errsz, "%s", resp.err);
		return -1;
	}
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

	if ((since != NULL && cur == NULL) || qname(q, sizeof(q), db) == -1 ||
	    util_fmt(uri, sizeof(uri), "/api/sync/changes?db=%s&limit=%d&"
	    "since=%s", q, limit, cur ? cur : "") == -1) {
		free(cur);
		util_fmt(err, errsz, "cursor too large");
		return -1;
	}
	free(cur);
	rc = call_json(arg, "GET", uri, NULL, batch, err, errsz);
	return rc;
}

static int
t_vv(void *arg, const char *db, json_object **vv, char *err, size_t errsz)
{
	json_object *o = NULL, *v;

	if (t_changes(arg, db, NULL, 0, &o, err, errsz) == -1)
		return -1;
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

	if (qname(q, sizeof(q), db) == -1 || util_fmt(uri, sizeof(uri),
	    "/api/sync/receive-changes?db=%s", q) == -1) {
		util_fmt(err, errsz, "database name too long");
		return -1;
	}
	return call_json(arg, "POST", uri, batch, res, err, errsz);
}

void
syncrun_summary(char *buf, size_t bufsz, const struct sync_counts *n)
{
	snprintf(buf, bufsz, "%lld sent, %lld received, %lld conflicts",
	    (long long)n->sent, (long long)n->received,
	    (long long)n->conflicts);
}

struct db_job {
	const struct conf		*conf;
	const struct store_identity	*self;
	const struct sync_transport	*t;
	struct syncrun_result		*res;
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
	rc = sync_db(app, name, j->self->node_id,
	    (int64_t)j->conf->max_clock_skew * 1000, j->t, &j->res->counts,
	    j->res->error, sizeof(j->res->error));
	sqlite3_close(app);
	return rc;
}

int
syncrun_peer(sqlite3 *state, const struct conf *c,
    const struct store_identity *id, struct peer *p,
    struct syncrun_result *res)
{
	struct link l = { .self = id, .peer = p };
	struct sync_transport t = { .vv = t_vv, .changes = t_changes,
	    .receive = t_receive, .arg = &l };
	struct db_job job = { .conf = c, .self = id, .t = &t, .res = res };
	char sum[128];

	memset(res, 0, sizeof(*res));
	if (sync_db_each(c, sync_one_db, &job) == -1) {
		log_warnx("sync with %s failed: %s", p->name, res->error);
		store_event(state, "warn", "sync", p->name, "sync failed: %s",
		    res->error);
		peers_note(state, p->id, "error", res->error, -1);
		return -1;
	}
	res->ok = 1;
	syncrun_summary(sum, sizeof(sum), &res->counts);
	log_info("sync with %s: %s", p->name, sum);
	store_event(state, "info", "sync", p->name, "%s", sum);
	peers_note(state, p->id, "ok", NULL, -1);
	return 0;
}

static void
add_counts(json_object *o, const struct sync_counts *n)
{
	json_object_object_add(o, "sent", json_object_new_int64(n->sent));
	json_object_object_add(o, "received", json_object_new_int64(n->received));
	json_object_object_add(o, "conflicts", json_object_new_int64(n->conflicts));
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
		if (syncrun_peer(state, c, id, &p, &res) == -1) {
			failed++;
			json_object_object_add(r, "error",
			    json_object_new_string(res.error));
		}
		json_object_object_add(r, "ok", json_object_new_boolean(res.ok));
		add_counts(r, &res.counts);
		syncrun_summary(sum, sizeof(sum), &res.counts);
		json_object_object_add(r, "summary", json_object_new_string(sum));
		total.sent += res.counts.sent;
		total.received += res.counts.received;
		total.conflicts += res.counts.conflicts;
		json_object_array_add(arr, r);
	}
	json_object_put(peers);
	o = json_object_new_object();
	json_object_object_add(o, "peers", arr);
	add_counts(o, &total);
	json_object_object_add(o, "failed", json_object_new_int(failed));
	return o;
}
