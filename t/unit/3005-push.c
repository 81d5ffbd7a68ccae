/* 3005-push.c - sync_db with batches in flight: a push (backlog harvested on the way) to a peer that keeps less than a batch (dropped, out of order) still ends with every change exactly once, one that keeps nothing stops the push, a failed send loses nothing; a pull decodes the next batch while one applies and stops at a malformed one with its reason. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbsync.h"
#include "hlc.h"
#include "sync.h"
#include "tap.h"
#include "dbtest.h"

#define ROWS	6000	/* 18,000 entries: four batches of SYNC_BATCH */

static const char *schema =
    "CREATE TABLE teams(id INTEGER PRIMARY KEY, name TEXT, city TEXT);";

/* The peer as the transport sees it: node b, reached through a connection
 * of each call's own (sends run on threads), with one fault to inject. */
enum fault { NONE, DROP_FIRST, SLOW_FIRST, FAIL_SECOND, DROP_ALL, BAD_SECOND };

struct peer {
	struct tnode	*a;		/* the other side, the sender of a push */
	struct tnode	*b;
	enum fault	 fault;
	pthread_mutex_t	 mu;
	int		 calls;		/* receive calls so far */
	int		 maxflight;	/* most receives running at once */
	int		 flight;
	int		 first_pending;	/* a's captures when batch 1 came */
	int		 faulted;	/* the fault happened (once) */
};

/*
 * Is batch (wire 2) the push's first, the one from seq 1?  Two batches
 * are in flight on threads of their own, so the order they reach the
 * peer in is the scheduler's: the faults go by content, not arrival.
 */
static int
first_batch(json_object *batch)
{
	json_object *rows;

	return json_object_object_get_ex(batch, "rows", &rows) &&
	    json_object_array_length(rows) > 0 &&
	    json_object_get_int64(json_object_array_get_idx(
	    json_object_array_get_idx(rows, 0), 2)) == 1;
}

static int
t_vv(void *arg, const char *db, json_object **vv, int *wire, char *err,
    size_t errsz)
{
	struct peer *p = arg;
	sqlite3 *c = NULL;
	int rc;

	(void)db;
	*wire = DBSYNC_WIRE;
	if (dbsync_open(p->b->path, &c, err, errsz) == -1)
		return -1;
	rc = dbsync_vv(c, vv, err, errsz);
	sqlite3_close(c);
	return rc;
}

/* The peer's feed (b's changes after since); with BAD_SECOND the second
 * answer carries a change whose seq is a string. */
static int
t_changes(void *arg, const char *db, json_object *since, int limit,
    json_object **batch, char *err, size_t errsz)
{
	struct peer *p = arg;
	json_object *ch;
	sqlite3 *c = NULL;
	int call, rc;

	(void)db;
	pthread_mutex_lock(&p->mu);
	call = ++p->calls;
	pthread_mutex_unlock(&p->mu);
	if (dbsync_open(p->b->path, &c, err, errsz) == -1)
		return -1;
	rc = dbsync_feed(c, since, limit, DBSYNC_WIRE, batch, err, errsz) ==
	    DBSYNC_OK ? 0 : -1;
	sqlite3_close(c);
	/* The first row's first seq, as a string. */
	if (rc == 0 && p->fault == BAD_SECOND && call == 2 &&
	    json_object_object_get_ex(*batch, "rows", &ch) &&
	    json_object_array_length(ch) > 0)
		json_object_array_put_idx(json_object_array_get_idx(ch, 0), 2,
		    json_object_new_string("1"));
	return rc;
}

static int
t_receive(void *arg, const char *db, json_object *batch, json_object **res,
    char *err, size_t errsz)
{
	struct peer *p = arg;
	struct dbsync_stats st;
	struct dbsync_batch *pb = NULL;
	json_object *vv = NULL;
	sqlite3 *c = NULL;
	int first = first_batch(batch), fault, ret = -1;

	(void)db;
	pthread_mutex_lock(&p->mu);
	p->calls++;
	if (++p->flight > p->maxflight)
		p->maxflight = p->flight;
	/* The fault strikes its batch once: a batch sent again goes. */
	fault = !p->faulted && (p->fault == FAIL_SECOND ? !first : first);
	if (fault && (p->fault == FAIL_SECOND || p->fault == DROP_FIRST))
		p->faulted = 1;
	pthread_mutex_unlock(&p->mu);
	memset(&st, 0, sizeof(st));
	if (p->fault == SLOW_FIRST && fault) {
		/* The second batch applies first: its entries come after a
		 * gap and are deferred. */
		struct timespec ts = { 0, 300 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (p->fault == FAIL_SECOND && fault) {
		snprintf(err, errsz, "peer went away");
		goto out;
	}
	if (first && p->first_pending == 0) {
		sqlite3 *ca = NULL;

		if (dbsync_open(p->a->path, &ca, err, errsz) == 0)
			p->first_pending = dbsync_pending(ca);
		sqlite3_close(ca);
	}
	if (dbsync_open(p->b->path, &c, err, errsz) == -1)
		goto out;
	/* As the pool does: a batch that overtook the one before it waits
	 * for it a while (except when the test wants it deferred). */
	if (p->fault != SLOW_FIRST && dbsync_batch_parse(batch, dbt_now(),
	    HLC_MAX_FUTURE_MS, &pb, err, errsz) == DBSYNC_OK) {
		for (int ms = 0; ms < 2000 && dbsync_batch_early(c, pb);
		    ms += 2) {
			struct timespec ts = { 0, 2 * 1000000L };
			nanosleep(&ts, NULL);
		}
		dbsync_batch_free(pb);
	}
	if (!(p->fault == DROP_FIRST && fault) && p->fault != DROP_ALL &&
	    dbsync_apply(c, p->b->id, batch, dbt_now(), HLC_MAX_FUTURE_MS,
	    &st, err, errsz) != DBSYNC_OK)
		goto out;
	if (dbsync_vv(c, &vv, err, errsz) == -1)
		goto out;
	*res = json_object_new_object();
	json_object_object_add(*res, "applied", json_object_new_int64(
	    st.applied));
	json_object_object_add(*res, "conflicts", json_object_new_int64(
	    st.conflicts));
	json_object_object_add(*res, "vv", vv);
	ret = 0;
out:
	sqlite3_close(c);
	pthread_mutex_lock(&p->mu);
	p->flight--;
	pthread_mutex_unlock(&p->mu);
	return ret;
}

/* Fresh nodes a and b with `rows` teams on one of them (on b harvested,
 * as a peer's feed has them), the peer b with fault f, counts zeroed. */
static void
setup(int rows, struct tnode *on, enum fault f, struct tnode *a,
    struct tnode *b, struct peer *p, struct sync_transport *t,
    struct sync_counts *n)
{
	static int round;
	char ida[16], idb[16], err[512];

	round++;
	snprintf(ida, sizeof(ida), "a%d", round);
	snprintf(idb, sizeof(idb), "b%d", round);
	dbt_node(a, ida, schema);
	dbt_node(b, idb, schema);
	if (dbt_track(a, "teams") == -1 || dbt_track(b, "teams") == -1)
		abort();
	if (dbt_exec(on->app, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
	    "SELECT i + 1 FROM n WHERE i < %d) INSERT INTO teams SELECT i, "
	    "'team ' || i, 'city ' || (i %% 13) FROM n", rows) == -1 ||
	    (on == b && dbsync_harvest(b->db, b->id, dbt_now(), NULL, err,
	    sizeof(err)) != DBSYNC_OK))
		abort();
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	p->a = a;
	p->b = b;
	p->fault = f;
	memset(t, 0, sizeof(*t));
	t->vv = t_vv;
	t->changes = t_changes;
	t->receive = t_receive;
	t->arg = p;
	memset(n, 0, sizeof(*n));
}

/* a pushes `rows` new teams to b; sync_db's result. */
static int
push_rows(int rows, enum fault f, struct tnode *a, struct tnode *b,
    struct peer *p, struct sync_counts *n, char *err, size_t errsz)
{
	struct sync_transport t;

	setup(rows, a, f, a, b, p, &t, n);
	return sync_db(a->db, "app.db", a->id, HLC_MAX_FUTURE_MS, &t,
	    SYNC_PUSH, n, NULL, err, errsz);
}

static int
push_with(enum fault f, struct tnode *a, struct tnode *b, struct peer *p,
    struct sync_counts *n, char *err, size_t errsz)
{
	return push_rows(ROWS, f, a, b, p, n, err, errsz);
}

/* a pulls ROWS teams from b; sync_db's result. */
static int
pull_rows(enum fault f, struct tnode *a, struct tnode *b, struct peer *p,
    struct sync_counts *n, char *err, size_t errsz)
{
	struct sync_transport t;

	setup(ROWS, b, f, a, b, p, &t, n);
	return sync_db(a->db, "app.db", a->id, HLC_MAX_FUTURE_MS, &t,
	    SYNC_PULL, n, NULL, err, errsz);
}

static int
same(struct tnode *a, struct tnode *b)
{
	char d1[65], d2[65];

	dbt_digest(a->db, "teams", d1);
	dbt_digest(b->db, "teams", d2);
	return strcmp(d1, d2) == 0;
}

/* After a failed sync that moved `before` entries, the next one in the
 * same direction (dir), with the fault gone, brings exactly the rest. */
static void
again(struct tnode *a, struct tnode *b, struct peer *p, int dir,
    int64_t before, const char *what)
{
	struct sync_transport t = { .vv = t_vv, .changes = t_changes,
	    .receive = t_receive, .arg = p };
	struct sync_counts m;
	char err[512];
	int rc;

	p->fault = NONE;
	memset(&m, 0, sizeof(m));
	rc = sync_db(a->db, "app.db", a->id, HLC_MAX_FUTURE_MS, &t, dir, &m,
	    NULL, err, sizeof(err));
	tap_ok(rc == 0, "the next %s succeeds%s%s", what, rc ? ": " : "",
	    rc ? err : "");
	tap_is_int(before + (dir == SYNC_PUSH ? m.sent : m.received),
	    3 * ROWS, "and brings exactly the rest");
	tap_ok(same(a, b), "both hold exactly the same rows");
}

static void
done_with(struct tnode *a, struct tnode *b, struct peer *p)
{
	dbt_node_close(a);
	dbt_node_close(b);
	pthread_mutex_destroy(&p->mu);
}

int
main(void)
{
	struct tnode a, b;
	struct peer p;
	struct sync_counts n;
	char err[512];
	int rc;

	dbt_scratch();

	rc = push_with(NONE, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, 0, "a plain push succeeds");
	tap_is_int(n.sent, 3 * ROWS, "every entry applied once");
	tap_ok(same(&a, &b), "b holds exactly a's rows");
	tap_is_int(p.calls, 4, "in four batches");
	tap_is_int(p.maxflight, 2, "two of them in flight at once");
	tap_is_int(dbsync_pending(a.db), 0, "and the backlog was harvested "
	    "whole by the end");
	done_with(&a, &b, &p);

	/* Eight chunks of backlog: the harvest goes on, on its own thread,
	 * while the first batches travel. */
	rc = push_rows(8 * DBSYNC_HARVEST_STEP, NONE, &a, &b, &p, &n, err,
	    sizeof(err));
	tap_is_int(rc, 0, "a push of an 8-chunk backlog succeeds");
	tap_ok(p.first_pending > 0, "its first batch went out before the "
	    "backlog was harvested (%d captures left then)", p.first_pending);
	tap_is_int(n.sent, 3 * 8 * DBSYNC_HARVEST_STEP, "every entry applied "
	    "once");
	tap_ok(same(&a, &b), "b holds exactly a's rows");
	tap_is_int(dbsync_pending(a.db), 0, "and the backlog was harvested "
	    "whole by the end");
	done_with(&a, &b, &p);

	/* 9,000 entries: two batches, and the second is the last. */
	rc = push_rows(3000, SLOW_FIRST, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, 0, "a push whose last batch arrives before the first "
	    "succeeds");
	tap_is_int(n.sent, 3 * 3000, "every entry applied once");
	tap_ok(same(&a, &b), "b holds exactly a's rows: the last batch was "
	    "sent again");
	tap_is_int(p.calls, 3, "and only that batch: the older vector in its "
	    "first answer did not send the first batch again");
	done_with(&a, &b, &p);

	rc = push_rows(3000, DROP_ALL, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, -1, "a push to a peer that keeps nothing fails");
	tap_ok(strstr(err, "keeps none") != NULL, "saying so: %s", err);
	tap_is_int(p.calls, 4, "after sending its two batches again once");
	done_with(&a, &b, &p);

	rc = push_with(DROP_FIRST, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, 0, "a push whose first batch the peer kept none of "
	    "succeeds");
	tap_is_int(n.sent, 3 * ROWS, "every entry applied once all the same");
	tap_ok(same(&a, &b), "and b holds exactly a's rows");
	tap_ok(p.calls > 4, "the batches after the gap were sent again "
	    "(%d sends)", p.calls);
	done_with(&a, &b, &p);

	rc = push_with(SLOW_FIRST, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, 0, "a push whose second batch arrives first succeeds");
	tap_is_int(n.sent, 3 * ROWS, "every entry applied once");
	tap_ok(same(&a, &b), "b holds exactly a's rows");
	done_with(&a, &b, &p);

	rc = push_with(FAIL_SECOND, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, -1, "a push whose second send fails fails");
	tap_ok(strstr(err, "peer went away") != NULL, "saying why: %s", err);
	tap_ok(n.sent > 0 && n.sent < 3 * ROWS, "what the peer applied "
	    "before is counted (%lld)", (long long)n.sent);
	again(&a, &b, &p, SYNC_PUSH, n.sent, "push");
	done_with(&a, &b, &p);

	/* Pulls: a takes b's rows. */
	rc = pull_rows(NONE, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, 0, "a pull of 6000 rows succeeds");
	tap_is_int(n.received, 3 * ROWS, "every entry applied once");
	tap_ok(same(&a, &b), "a holds exactly b's rows");
	tap_ok(p.calls >= 4, "asked for in %d batches", p.calls);
	done_with(&a, &b, &p);

	rc = pull_rows(BAD_SECOND, &a, &b, &p, &n, err, sizeof(err));
	tap_is_int(rc, -1, "a pull whose second batch is malformed fails");
	tap_ok(strstr(err, "bad seq") != NULL, "with the batch's fault: %s",
	    err);
	tap_is_int(n.received, 5001, "after applying the first batch whole");
	again(&a, &b, &p, SYNC_PULL, n.received, "pull");
	done_with(&a, &b, &p);

	dbt_cleanup();
	return tap_done();
}
