/* sync.c - the one-shot bidirectional database sync, over any transport. */
#include "sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dbsync.h"
#include "hlc.h"
#include "jget.h"
#include "log.h"
#include "util.h"

static int
more(json_object *batch)
{
	return jget_bool(batch, "more");
}

/* One exchange with the peer on a thread of its own, while this thread
 * reads or applies: in is the batch sent (receive) or the vector asked
 * after (changes); out is the answer. */
struct bgcall {
	const struct sync_transport	*t;
	const char			*db;
	json_object			*in;
	json_object			*out;
	int				 rc;
	char				 why[512];
	struct pulled			*got;	/* ask: out, decoded */
};

/* A pulled batch and its decoding (dbsync_batch_parse), which the thread
 * that asked for it does while the previous batch applies. */
struct pulled {
	json_object		*batch;
	struct dbsync_batch	*pb;
	enum dbsync_rc		 rc;
	char			 why[512];
	int64_t			 max_future_ms;
};

static void
pulled_parse(struct pulled *p)
{
	p->pb = NULL;
	p->rc = dbsync_batch_parse(p->batch, hlc_now_ms(), p->max_future_ms,
	    &p->pb, p->why, sizeof(p->why));
}

static void
pulled_free(struct pulled *p)
{
	dbsync_batch_free(p->pb);	/* borrows from batch: first */
	json_object_put(p->batch);
	p->pb = NULL;
	p->batch = NULL;
}

static void *
send_main(void *arg)
{
	struct bgcall *c = arg;

	c->rc = c->t->receive(c->t->arg, c->db, c->in, &c->out, c->why,
	    sizeof(c->why));
	return NULL;
}

static void *
ask_main(void *arg)
{
	struct bgcall *c = arg;

	c->rc = c->t->changes(c->t->arg, c->db, c->in, SYNC_BATCH,
	    &c->got->batch, c->why, sizeof(c->why));
	if (c->rc == 0)
		pulled_parse(c->got);
	return NULL;
}

static void
vv_raise(json_object *vv, const char *origin, int64_t seq)
{
	if (seq > jget_int(vv, origin, 0))
		json_object_object_add(vv, origin, json_object_new_int64(seq));
}

static json_object *
vv_copy(json_object *vv)
{
	json_object *c = NULL;

	return json_object_deep_copy(vv, &c, NULL) == 0 ? c : NULL;
}

/*
 * Raise vv to every origin's seq in more.  Answers come back in the order
 * the batches were sent, but the peer may have applied a later batch
 * first: its answer's vector is older, and taking it as it is would send
 * applied entries again.
 */
static void
vv_raise_all(json_object *vv, json_object *more)
{
	json_object_object_foreach(more, origin, seq) {
		if (json_object_is_type(seq, json_type_int))
			vv_raise(vv, origin, json_object_get_int64(seq));
	}
}

/* The version vector the peer will have once it applied batch: since,
 * raised to the last change of each origin in the batch. */
static json_object *
vv_after(json_object *since, json_object *batch)
{
	json_object *vv, *tops;

	if ((vv = vv_copy(since)) == NULL)
		return NULL;
	if ((tops = dbsync_batch_tops(batch)) == NULL) {
		json_object_put(vv);
		return NULL;
	}
	vv_raise_all(vv, tops);
	json_object_put(tops);
	return vv;
}

/* Has the peer (vector have) everything vector want says? */
static int
vv_covers(json_object *have, json_object *want)
{
	json_object_object_foreach(want, k, v) {
		if (jget_int(have, k, 0) < json_object_get_int64(v))
			return 0;
	}
	return 1;
}

/* Ask the peer for the batch after our version vector (*vv, replaced)
 * into p, decoded. */
static int
pull_ask(sqlite3 *app, const struct sync_transport *t, const char *db_name,
    json_object **vv, struct pulled *p, char *err, size_t errsz)
{
	char why[512];

	json_object_put(*vv);
	*vv = NULL;
	if (dbsync_vv(app, vv, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "%s: %s", db_name, why);
		return -1;
	}
	if (t->changes(t->arg, db_name, *vv, SYNC_BATCH, &p->batch, why,
	    sizeof(why)) == -1) {
		util_fmt(err, errsz, "pull %s: %s", db_name, why);
		return -1;
	}
	pulled_parse(p);
	return 0;
}

/*
 * A big backlog of local writes (a bulk import, a stopped worker) is
 * harvested a chunk at a time on a thread of its own, with a connection
 * of its own, while the push feeds and sends what is harvested: the
 * harvest, the feed and the peer's apply overlap instead of taking turns
 * (WAL lets the feed read while the harvest writes; in rollback mode they
 * wait for each other's short transactions).  left bounds the chunks to
 * the backlog found at the start, so an application writing all the time
 * cannot keep a push going; what it wrote meanwhile is harvested at the
 * end, on the sync's connection, with the parked-entry pass.  Without a
 * thread the chunks are harvested in turn with the sends, as before.
 */
struct harvest {
	sqlite3		*app;
	const char	*self;
	const char	*db;
	int		 left;		/* chunks before the final harvest */
	int		 done;
	/* The harvesting thread, when there is one. */
	pthread_t	 th;
	int		 running;	/* started, not joined */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 chunks;	/* committed so far (mu) */
	int		 seen;		/* chunks the push has fed from */
	int		 finished;	/* the thread is done (mu) */
	int		 stop;		/* asked to stop early (mu) */
	int		 failed;
	char		 why[512];
	char		 path[4096];	/* the database file */
};

static int
harvest_fail(struct harvest *h, const char *why, char *err, size_t errsz)
{
	util_fmt(err, errsz, "%s: harvest: %s", h->db, why);
	return -1;
}

static void *
harvest_main(void *arg)
{
	struct harvest *h = arg;
	sqlite3 *db = NULL;
	char why[512];
	int more = 1, left = h->left, stop = 0;

	if (dbsync_open(h->path, &db, why, sizeof(why)) == -1) {
		more = 0;
		h->failed = 1;
	}
	while (more && left-- > 0 && !stop) {
		if (dbsync_harvest_some(db, h->self, hlc_now_ms(),
		    DBSYNC_HARVEST_STEP, &more, NULL, why, sizeof(why)) !=
		    DBSYNC_OK) {
			h->failed = 1;
			break;
		}
		pthread_mutex_lock(&h->mu);
		h->chunks++;
		stop = h->stop;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
	}
	sqlite3_close(db);
	pthread_mutex_lock(&h->mu);
	if (h->failed)
		util_fmt(h->why, sizeof(h->why), "%s", why);
	h->finished = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Start harvesting the backlog (h->left chunks) on a thread. */
static void
harvest_start(struct harvest *h)
{
	const char *path = sqlite3_db_filename(h->app, "main");

	/* A database without a file of its own (in memory, temporary) is
	 * harvested in turn, on the sync's connection. */
	if (path == NULL || path[0] == '\0' ||
	    util_strlcpy(h->path, path, sizeof(h->path)) == -1)
		return;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->running = pthread_create(&h->th, NULL, harvest_main, h) == 0;
	if (!h->running) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
	}
}

/* Join the thread (asking it to stop after its chunk when stop is set);
 * -1 with err when it failed. */
static int
harvest_join(struct harvest *h, int stop, char *err, size_t errsz)
{
	if (!h->running)
		return 0;
	pthread_mutex_lock(&h->mu);
	h->stop |= stop;
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	h->running = 0;
	h->left = 0;
	if (h->failed)
		return harvest_fail(h, h->why, err, errsz);
	return 0;
}

/*
 * More to feed from: with a thread, the chunks it committed since the
 * last call (waited for only when wait is set -- nothing is in flight),
 * else the next chunk harvested here; once the backlog is done, the
 * final harvest (every capture, parked entries).  1 when there may be
 * more to feed, 0 when not yet, -1 with err.
 */
static int
harvest_step(struct harvest *h, int wait, char *err, size_t errsz)
{
	struct dbsync_stats st;
	char why[512];
	int more = 0, fresh, finished;

	if (h->done)
		return 0;
	if (h->running) {
		pthread_mutex_lock(&h->mu);
		while (wait && h->chunks == h->seen && !h->finished)
			pthread_cond_wait(&h->cv, &h->mu);
		fresh = h->chunks != h->seen;
		finished = h->finished;
		h->seen = h->chunks;
		pthread_mutex_unlock(&h->mu);
		if (fresh)
			return 1;
		if (!finished)
			return 0;
		if (harvest_join(h, 0, err, errsz) == -1)
			return -1;
	}
	if (h->left > 0) {
		if (dbsync_harvest_some(h->app, h->self, hlc_now_ms(),
		    DBSYNC_HARVEST_STEP, &more, &st, why, sizeof(why)) !=
		    DBSYNC_OK)
			return harvest_fail(h, why, err, errsz);
		h->left--;
		if (more && h->left > 0)
			return 1;
	}
	if (dbsync_harvest(h->app, h->self, hlc_now_ms(), &st, why,
	    sizeof(why)) != DBSYNC_OK)
		return harvest_fail(h, why, err, errsz);
	h->done = 1;
	return 1;
}

/* Everything now: the thread's chunks, then the final harvest. */
static int
harvest_all(struct harvest *h, char *err, size_t errsz)
{
	if (harvest_join(h, 0, err, errsz) == -1)
		return -1;
	h->left = 0;
	return harvest_step(h, 1, err, errsz) == -1 ? -1 : 0;
}

/* Batches sent and not yet answered, at most: the peer parses the next
 * while it applies this one, so it never waits for us. */
#define PUSH_WINDOW	2

struct flight {
	struct bgcall	 c;		/* c.in: the batch, c.out: the answer */
	json_object	*assumed;	/* the peer's vector once it applied */
	struct util_bg	 bg;
	int		 waited;
};

static void
flight_wait(struct flight *f)
{
	if (!f->waited)
		util_bg_wait(&f->bg);
	f->waited = 1;
}

/*
 * Count a successful answer into out and raise pvv to the peer's vector
 * in it -- where the next batch starts; without it we would resend the
 * same batch.  -1 when the answer carries no vector.
 */
static int
flight_take(const struct flight *f, struct sync_counts *out, json_object *pvv)
{
	json_object *nvv;

	out->sent += jget_int(f->c.out, "applied", 0);
	out->conflicts += jget_int(f->c.out, "conflicts", 0);
	if (!json_object_object_get_ex(f->c.out, "vv", &nvv) ||
	    !json_object_is_type(nvv, json_type_object))
		return -1;
	vv_raise_all(pvv, nvv);
	return 0;
}

static void
flight_free(struct flight *f)
{
	json_object_put(f->c.in);
	json_object_put(f->c.out);
	json_object_put(f->assumed);
	memset(f, 0, sizeof(*f));
}

/*
 * Push: everything we have after the peer's version vector (*pvv, raised
 * by the peer's last answer).  Up to PUSH_WINDOW batches are in flight,
 * each read from the vector the peer will have once it applied the ones
 * before.  The answers come back in order; when one shows the peer kept
 * less than assumed (a gap, parked entries refused), the batches after it
 * are answered and then read again from where the peer really is -- a
 * batch sent too early is harmless, its entries are skipped or deferred.
 */
static int
push(sqlite3 *app, const char *db_name, const struct sync_transport *t,
    struct harvest *h, struct sync_counts *out, json_object **pvv,
    char *err, size_t errsz)
{
	struct flight f[PUSH_WINDOW];
	json_object *from = NULL, *reread = NULL;
	int head = 0, n = 0, rounds = 0, fed_all = 0, ret = -1, i, wire = 1;
	enum dbsync_rc rc;
	char why[512];

	memset(f, 0, sizeof(f));
	if (t->vv(t->arg, db_name, pvv, &wire, why, sizeof(why)) == -1) {
		util_fmt(err, errsz, "push %s: %s", db_name, why);
		return -1;
	}
	if ((from = vv_copy(*pvv)) == NULL) {
		util_fmt(err, errsz, "out of memory");
		return -1;
	}
	for (;;) {
		int starved = 0;

		/* Fill the window. */
		while (!fed_all && n < PUSH_WINDOW && rounds < SYNC_MAX_ROUNDS) {
			struct flight *g = &f[(head + n) % PUSH_WINDOW];
			json_object *batch = NULL;

			rc = dbsync_feed(app, from, SYNC_BATCH, wire, &batch,
			    why, sizeof(why));
			if (rc != DBSYNC_OK) {
				util_fmt(err, errsz, "push %s: %s", db_name,
				    why);
				goto done;
			}
			if (dbsync_batch_len(batch) == 0) {
				json_object_put(batch);
				fed_all = h->done;
				starved = !h->done;
				break;
			}
			fed_all = !more(batch) && h->done;
			starved = !more(batch) && !h->done;
			if ((g->assumed = vv_after(from, batch)) == NULL) {
				json_object_put(batch);
				util_fmt(err, errsz, "out of memory");
				goto done;
			}
			json_object_put(from);
			from = json_object_get(g->assumed);
			g->c.t = t;
			g->c.db = db_name;
			g->c.in = batch;
			util_bg_run(&g->bg, send_main, &g->c);
			n++;
			rounds++;
		}
		if (starved) {
			/* Everything harvested is sent: more comes from the
			 * harvest while the peer applies what is in flight. */
			if ((i = harvest_step(h, n == 0, err, errsz)) == -1)
				goto done;
			if (n == 0 || (i == 1 && n < PUSH_WINDOW))
				continue;
		}
		if (n == 0)
			break;
		/* The oldest answer. */
		flight_wait(&f[head]);
		if (f[head].c.rc == -1) {
			util_fmt(err, errsz, "push %s: %s", db_name,
			    f[head].c.why);
			goto done;
		}
		if (flight_take(&f[head], out, *pvv) == -1) {
			util_fmt(err, errsz, "push %s: peer answered without "
			    "its version vector", db_name);
			goto done;
		}
		if (t->progress != NULL)
			t->progress(t->arg, out);
		if (!vv_covers(*pvv, f[head].assumed)) {
			/* Read again from where the peer is, once the
			 * batches already sent have been answered. */
			for (i = 1; i < n; i++) {
				struct flight *g = &f[(head + i) % PUSH_WINDOW];

				flight_wait(g);
				if (g->c.rc == 0)
					flight_take(g, out, *pvv);
				flight_free(g);
			}
			flight_free(&f[head]);
			n = 0;
			head = 0;
			/* A peer that took nothing since the last time would
			 * have us send the same batch for ever. */
			if (reread != NULL && vv_covers(reread, *pvv)) {
				util_fmt(err, errsz, "push %s: the peer keeps "
				    "none of the batches it is sent", db_name);
				goto done;
			}
			json_object_put(reread);
			reread = vv_copy(*pvv);
			json_object_put(from);
			if (reread == NULL || (from = vv_copy(*pvv)) == NULL) {
				from = NULL;
				util_fmt(err, errsz, "out of memory");
				goto done;
			}
			fed_all = 0;
			continue;
		}
		flight_free(&f[head]);
		head = (head + 1) % PUSH_WINDOW;
		n--;
	}
	ret = 0;
done:
	/* Never leave a thread behind with our memory. */
	for (i = 0; i < n; i++) {
		struct flight *g = &f[(head + i) % PUSH_WINDOW];

		flight_wait(g);
		flight_free(g);
	}
	json_object_put(from);
	json_object_put(reread);
	return ret;
}

int
sync_db(sqlite3 *app, const char *db_name, const char *self_id,
    int64_t max_future_ms, const struct sync_transport *t, int dirs,
    struct sync_counts *out, json_object **peer_vv, char *err,
    size_t errsz)
{
	json_object *vv = NULL, *pvv = NULL;
	struct pulled cur = { .max_future_ms = max_future_ms };
	struct harvest hv = { .app = app, .self = self_id, .db = db_name };
	struct dbsync_stats st;
	enum dbsync_rc rc;
	char why[512];
	int rounds, ret = -1;

	/*
	 * Our own writes get their clocks before anything is compared: now,
	 * or -- a backlog of more than a chunk, to push -- a chunk at a time
	 * while the push runs, and all of it before anything is pulled.
	 */
	hv.left = dbsync_pending(app);
	if (!(dirs & SYNC_PUSH) || hv.left <= DBSYNC_HARVEST_STEP)
		hv.left = 0;
	else
		hv.left = (hv.left + DBSYNC_HARVEST_STEP - 1) /
		    DBSYNC_HARVEST_STEP;
	if (hv.left == 0 && harvest_all(&hv, err, errsz) == -1)
		return -1;
	if (hv.left > 0)
		harvest_start(&hv);

	/*
	 * Pull: everything the peer has after our version vector.  The next
	 * batch is asked for while this one applies, from the vector we will
	 * have once it applied whole (parked entries count: they are logged
	 * and unparked later); when our vector ends up lower (deferred
	 * entries), the next batch is asked for again from where we are.
	 */
	if ((dirs & SYNC_PULL) && pull_ask(app, t, db_name, &vv, &cur, err,
	    errsz) == -1)
		goto done;
	for (rounds = 0; (dirs & SYNC_PULL) && rounds < SYNC_MAX_ROUNDS;
	    rounds++) {
		struct pulled next = { .max_future_ms = max_future_ms };
		struct bgcall ask = { .t = t, .db = db_name, .rc = -1,
		    .got = &next };
		struct util_bg bg;
		int applied = 0, last;

		if (dbsync_batch_len(cur.batch) == 0)
			break;
		last = !more(cur.batch) || rounds + 1 >= SYNC_MAX_ROUNDS;
		if (!last && (ask.in = vv_after(vv, cur.batch)) != NULL)
			util_bg_run(&bg, ask_main, &ask);
		if (harvest_all(&hv, err, errsz) == -1) {
			if (ask.in != NULL)
				util_bg_wait(&bg);
			pulled_free(&next);
			json_object_put(ask.in);
			goto done;
		}
		if (cur.rc != DBSYNC_OK)
			util_fmt(why, sizeof(why), "%s", cur.why);
		else if (t->may_apply == NULL ||
		    t->may_apply(t->arg, why, sizeof(why)) == 0) {
			memset(&st, 0, sizeof(st));
			rc = dbsync_apply_parsed(app, self_id, cur.pb,
			    hlc_now_ms(), max_future_ms, &st, why,
			    sizeof(why));
			if (t->applied != NULL)
				t->applied(t->arg);
			applied = rc == DBSYNC_OK;
		}
		if (ask.in != NULL)
			util_bg_wait(&bg);
		if (!applied) {
			util_fmt(err, errsz, "pull %s: %s", db_name, why);
			pulled_free(&next);
			json_object_put(ask.in);
			goto done;
		}
		out->received += st.applied;
		out->conflicts += st.conflicts;
		if (t->progress != NULL)
			t->progress(t->arg, out);
		pulled_free(&cur);
		if (last)
			break;
		if (ask.in != NULL && ask.rc == -1) {
			/* Asking again would only wait out the same failure. */
			util_fmt(err, errsz, "pull %s: %s", db_name, ask.why);
			pulled_free(&next);
			json_object_put(ask.in);
			goto done;
		}
		json_object_put(vv);
		vv = NULL;
		if (ask.in != NULL && dbsync_vv(app, &vv, why,
		    sizeof(why)) == 0 && vv_covers(vv, ask.in)) {
			cur = next;
		} else {
			pulled_free(&next);
			if (pull_ask(app, t, db_name, &vv, &cur, err,
			    errsz) == -1) {
				json_object_put(ask.in);
				goto done;
			}
		}
		json_object_put(ask.in);
	}
	pulled_free(&cur);

	if (!(dirs & SYNC_PUSH)) {
		ret = 0;
		goto done;
	}
	if (push(app, db_name, t, &hv, out, &pvv, err, errsz) == -1)
		goto done;
	if (peer_vv != NULL)
		*peer_vv = json_object_get(pvv);
	ret = 0;
done:
	/* A failed sync stops the backlog's thread after its chunk. */
	harvest_join(&hv, 1, why, sizeof(why));
	json_object_put(vv);
	pulled_free(&cur);
	json_object_put(pvv);
	return ret;
}

int
sync_db_each(const struct conf *c, int (*fn)(const char *, void *), void *arg)
{
	const char *p = c->databases;
	char name[UTIL_PATH_MAX];

	while ((p = util_list_next(p, name, sizeof(name))) != NULL)
		if (fn(name, arg) == -1)
			return -1;
	return 0;
}

struct find {
	const char	*want;
	int		 found;
};

static int
find_one(const char *name, void *arg)
{
	struct find *f = arg;

	if (strcmp(name, f->want) == 0)
		f->found = 1;
	return 0;
}

int
sync_db_path(const struct conf *c, const char *name, char *buf, size_t bufsz)
{
	struct find f = { .want = name };

	if (name == NULL || *name == '\0')
		return -1;
	sync_db_each(c, find_one, &f);
	if (!f.found)
		return -1;
	return util_fmt(buf, bufsz, "%s/%s", c->instance_dir, name);
}

char *
sync_vv_encode(json_object *vv)
{
	return sync_b64_encode(vv);
}

char *
sync_b64_encode(json_object *vv)
{
	const char *s = json_object_to_json_string_ext(vv,
	    JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s), cap;
	char *out;

	cap = sodium_base64_encoded_len(len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if ((out = malloc(cap)) == NULL)
		return NULL;
	sodium_bin2base64(out, cap, (const unsigned char *)s, len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

json_object *
sync_b64_json(const char *s)
{
	unsigned char buf[16384];
	size_t len;

	if (s == NULL || strlen(s) > sizeof(buf) ||
	    sodium_base642bin(buf, sizeof(buf) - 1, s, strlen(s), NULL, &len,
	    NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return NULL;
	buf[len] = '\0';
	return json_tokener_parse((const char *)buf);
}

json_object *
sync_vv_decode(const char *s)
{
	json_object *o;

	if (s == NULL)
		return NULL;
	if (*s == '\0')
		return json_object_new_object();
	if ((o = sync_b64_json(s)) == NULL)
		return NULL;
	if (!json_object_is_type(o, json_type_object))
		goto bad;
	/* A version vector maps node ids to non-negative sequence numbers. */
	json_object_object_foreach(o, k, val) {
		if (strlen(k) == 0 || strlen(k) > 64 ||
		    !json_object_is_type(val, json_type_int) ||
		    json_object_get_int64(val) < 0)
			goto bad;
	}
	return o;
bad:
	json_object_put(o);
	return NULL;
}
