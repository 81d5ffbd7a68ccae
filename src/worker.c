/* worker.c - the worker's event loop: watch the app DBs, sync at once or on the timer, with backoff. */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "dbsync.h"
#include "events.h"
#include "files.h"
#include "fpath.h"
#include "hlc.h"
#include "log.h"
#include "node.h"
#include "peer.h"
#include "peers.h"
#include "store.h"
#include "sync.h"
#include "syncrun.h"
#include "tm.h"
#include "updaterun.h"
#include "util.h"
#include "wake.h"

#define WORKER_MAX_DBS		16
#define WORKER_MAX_PEERS	64
#define DEBOUNCE_MS		50	/* coalesce a burst of file events */
#define DB_DEBOUNCE_MS		10	/* commits: one harvest covers a burst */
#define BACKOFF_MAX_MS		60000
#define HOOK_DEBOUNCE_MS	200
#define WORKER_MAX_WATCHES	8192	/* directories watched for file sync */
#define COMPACT_EVERY_MS	(24LL * 3600 * 1000)

/* A watched directory of the instance folder, by inotify descriptor. */
struct wdir {
	int	 wd;
	char	*rel;			/* "" for the root */
};

/* One watched application database. */
struct wdb {
	char	 name[UTIL_PATH_MAX];
	char	 path[UTIL_PATH_MAX];
	char	 base[256];		/* file name, to match inotify events */
	sqlite3	*conn;			/* our reader, for PRAGMA data_version */
	int64_t	 data_version;
	int	 wd;
};

#define PEER_BUDGET_MS		(10LL * 60 * 1000)	/* one peer's sync */
#define REAP_POLL_MS		100	/* while peer syncs run */

/* What the worker knows about a peer between runs. */
struct wpeer {
	int	 id;
	int	 failures;
	int64_t	 next_try_ms;		/* backoff: not before this */
	pid_t	 pid;			/* its sync running now, or 0 */
	int64_t	 started_ms;
	int	 again;			/* SYNCRUN_* to do once it is done */
	char	 name[128];
};

struct worker {
	const struct conf		*conf;		/* = &live */
	int				 lockfd;	/* worker.lock */
	struct conf			 live;
	long long			 conf_mtime;
	struct store_identity		 id;
	sqlite3				*state;
	struct wdb			 dbs[WORKER_MAX_DBS];
	int				 ndbs;
	struct wpeer			 peers[WORKER_MAX_PEERS];
	int				 npeers;
	int				 ino;
	struct wdir			*dirs;
	int				 ndirs;
	struct files_cfg		 fcfg;
	int64_t				 scan_at;	/* 0: no file change seen */
	int64_t				 push_at;	/* 0: nothing due */
	int				 push_what;	/* SYNCRUN_* due */
	int				 push_local;	/* ours, not only relays */
	/* Peers whose changes we are relaying: not sent back to them. */
	char				 relay_from[WORKER_MAX_PEERS][STORE_NODE_ID_LEN];
	int				 nrelay;
	int64_t				 periodic_at;
	int64_t				 hook_at;
	int64_t				 compact_at;
};

static volatile sig_atomic_t worker_stop;

static void
on_stop(int sig)
{
	(void)sig;
	worker_stop = 1;
}

static struct wpeer *
wpeer_of(struct worker *w, int id)
{
	for (int i = 0; i < w->npeers; i++)
		if (w->peers[i].id == id)
			return &w->peers[i];
	if (w->npeers == WORKER_MAX_PEERS)
		return NULL;
	w->peers[w->npeers] = (struct wpeer){ .id = id };
	return &w->peers[w->npeers++];
}

static int
add_db(const char *name, void *arg)
{
	struct worker *w = arg;
	struct wdb *d;
	char dir[UTIL_PATH_MAX], err[256], *slash;

	if (w->ndbs == WORKER_MAX_DBS) {
		log_warnx("more than %d databases: %s not watched",
		    WORKER_MAX_DBS, name);
		return 0;
	}
	d = &w->dbs[w->ndbs];
	memset(d, 0, sizeof(*d));
	d->wd = -1;
	util_strlcpy(d->name, name, sizeof(d->name));
	if (sync_db_path(w->conf, name, d->path, sizeof(d->path)) == -1)
		return 0;
	util_strlcpy(dir, d->path, sizeof(dir));
	slash = strrchr(dir, '/');
	util_strlcpy(d->base, slash + 1, sizeof(d->base));
	*slash = '\0';
	if (dbsync_open(d->path, &d->conn, err, sizeof(err)) == -1) {
		log_warnx("database %s: %s (not watched)", name, err);
		sqlite3_close(d->conn);
		return 0;
	}
	d->data_version = store_scalar(d->conn, "PRAGMA data_version");
	/* The directory, not the file: the WAL and journal come and go, and
	 * a commit in WAL mode touches only the -wal file. */
	d->wd = inotify_add_watch(w->ino, dir, IN_MODIFY | IN_CLOSE_WRITE |
	    IN_MOVED_TO | IN_CREATE);
	if (d->wd == -1)
		log_warnx("inotify on %s: %s", dir, strerror(errno));
	w->ndbs++;
	return 0;
}

static const char *
dir_of(struct worker *w, int wd)
{
	for (int i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return w->dirs[i].rel;
	return NULL;
}

/*
 * Watch rel (relative to the instance folder) and every directory below
 * it that is synced.  inotify is not recursive, so new directories are
 * added as they appear.
 */
static void
watch_tree(struct worker *w, const char *rel)
{
	char path[UTIL_PATH_MAX], child[UTIL_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int wd;

	if (w->ndirs >= WORKER_MAX_WATCHES) {
		log_warnx("more than %d directories: the periodic rescan "
		    "covers the rest", WORKER_MAX_WATCHES);
		return;
	}
	if (util_fmt(path, sizeof(path), "%s%s%s", w->conf->instance_dir,
	    *rel ? "/" : "", rel) == -1)
		return;
	wd = inotify_add_watch(w->ino, path, IN_CREATE | IN_DELETE |
	    IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |
	    IN_ATTRIB | IN_DONT_FOLLOW | IN_ONLYDIR);
	if (wd == -1)
		return;
	if (dir_of(w, wd) == NULL) {
		char *copy = strdup(rel);
		if (copy == NULL)
			return;
		w->dirs[w->ndirs].wd = wd;
		w->dirs[w->ndirs].rel = copy;
		w->ndirs++;
	}
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (util_fmt(child, sizeof(child), "%s%s%s", rel, *rel ? "/" :
		    "", de->d_name) == -1 || fpath_ignored(child,
		    w->conf->ignore, w->conf->databases))
			continue;
		watch_tree(w, child);
	}
	closedir(d);
}

/* Look at a buffer of inotify events: a synced path changed means a
 * rescan soon; a new directory gets its own watch. */
static void
file_events(struct worker *w, const char *buf, ssize_t len, int64_t now)
{
	for (const char *p = buf; p < buf + len;) {
		const struct inotify_event *ev = (const void *)p;
		const char *dir = dir_of(w, ev->wd);
		char rel[UTIL_PATH_MAX];

		p += sizeof(*ev) + ev->len;
		if (dir == NULL || ev->len == 0 || util_fmt(rel, sizeof(rel),
		    "%s%s%s", dir, *dir ? "/" : "", ev->name) == -1 ||
		    fpath_ignored(rel, w->conf->ignore, w->conf->databases))
			continue;
		if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE |
		    IN_MOVED_TO)))
			watch_tree(w, rel);
		if (w->scan_at == 0)
			w->scan_at = now + DEBOUNCE_MS;
	}
}

/* The debounced rescan: anything changed goes out to the peers. */
static void
file_scan(struct worker *w, int from_event)
{
	struct files_scan_stats st;
	char err[512];

	memset(&st, 0, sizeof(st));
	if (files_scan(w->state, &w->fcfg, &st, err, sizeof(err)) != FILES_OK) {
		log_warnx("file scan: %s", err);
		return;
	}
	log_debug("file scan: %lld changed, %lld deleted", (long long)st.changed,
	    (long long)st.deleted);
	if (st.changed > 0) {
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "files",
		    json_object_new_int64(st.changed));
		events_publish(w->conf, w->state, "local-change", ev);
	}
	/*
	 * After a file event, push even when this scan found nothing new:
	 * the pool may have indexed the change first (applying a peer's
	 * manifest rescans the paths it names), and then only a push tells
	 * the other peers.  A push with nothing new costs one request.
	 */
	if (st.changed > 0 || from_event) {
		if (w->push_at == 0)
			w->push_at = tm_now_ms();
		w->push_what |= SYNCRUN_FILES_PUSH;
		w->push_local = 1;
	}
}

/* Does any captured row of db belong to a table marked immediate? */
static int
immediate_pending(struct worker *w, struct wdb *d)
{
	sqlite3_stmt *st = NULL;
	int hit = 0;

	if (sqlite3_prepare_v2(d->conn, "SELECT DISTINCT t.tbl FROM "
	    "_meshsync_capture c JOIN _meshsync_tracked t ON t.tid = c.tid",
	    -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (!hit && sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(w->state, "SELECT 1 FROM tracked WHERE "
		    "db = ? AND tbl = ? AND immediate = 1", -1, &q,
		    NULL) == SQLITE_OK) {
			sqlite3_bind_text(q, 1, d->name, -1, SQLITE_STATIC);
			sqlite3_bind_text(q, 2, (const char *)
			    sqlite3_column_text(st, 0), -1, SQLITE_STATIC);
			hit = sqlite3_step(q) == SQLITE_ROW;
		}
		sqlite3_finalize(q);
	}
	sqlite3_finalize(st);
	return hit;
}

/* A commit landed in some watched DB: immediate tables push at once (after
 * the debounce), the rest wait for the periodic run. */
static void
db_changed(struct worker *w, int64_t now)
{
	for (int i = 0; i < w->ndbs; i++) {
		struct wdb *d = &w->dbs[i];
		int64_t v = store_scalar(d->conn, "PRAGMA data_version");

		struct dbsync_stats st;
		char err[256];
		int urgent;

		if (v == d->data_version)
			continue;
		d->data_version = v;
		urgent = immediate_pending(w, d);
		/* Harvest now: a change's clock is taken when it is harvested,
		 * so harvesting at commit keeps last-writer-wins in the order
		 * the writes really happened. */
		memset(&st, 0, sizeof(st));
		if (dbsync_harvest(d->conn, w->id.node_id, hlc_now_ms(), &st, err,
		    sizeof(err)) != DBSYNC_OK)
			log_warnx("harvest %s: %s", d->name, err);
		else if (st.harvested > 0) {
			json_object *ev = json_object_new_object();
			json_object_object_add(ev, "db",
			    json_object_new_string(d->name));
			json_object_object_add(ev, "changes",
			    json_object_new_int64(st.harvested));
			events_publish(w->conf, w->state, "local-change", ev);
		}
		/* Our own harvest bumped data_version for nobody but us. */
		d->data_version = store_scalar(d->conn, "PRAGMA data_version");
		if (urgent) {
			if (w->push_at == 0)
				w->push_at = now + DB_DEBOUNCE_MS;
			w->push_what |= SYNCRUN_DB_PUSH;
			w->push_local = 1;
		}
	}
}

static void
run_hook(struct worker *w)
{
	pid_t pid;

	if (w->conf->post_apply_hook[0] == '\0')
		return;
	pid = fork();
	if (pid == 0) {
		setsid();
		execl("/bin/sh", "sh", "-c", w->conf->post_apply_hook,
		    (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		log_info("post_apply_hook started (pid %ld)", (long)pid);
	else
		log_err("post_apply_hook: fork: %s", strerror(errno));
}

/* Exit codes of a peer's sync child. */
#define PEER_OK		0
#define PEER_FAILED	1
#define PEER_RECEIVED	3	/* ok, and something arrived */

/*
 * Each peer syncs in a child process of its own: a slow or dead peer never
 * delays the others, and the worker's loop (heartbeat, file events,
 * wake-ups) keeps running during long transfers.  The child opens its own
 * state DB handle; SQLite handles never cross fork.
 */
static void
spawn_peer_sync(struct worker *w, struct wpeer *wp, const struct peer *p,
    int64_t now, int what)
{
	int health = what == SYNCRUN_ALL;

	pid_t pid = fork();

	if (pid == -1) {
		log_err("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		char path[UTIL_PATH_MAX], err[256];
		struct syncrun_result res;
		struct peer copy = *p;
		sqlite3 *state = NULL;

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* The flock belongs to the worker: a peer sync outliving it
		 * must not keep a new worker from starting. */
		close(w->lockfd);
		conf_path(w->conf, path, sizeof(path), CONF_STATE_DB);
		if (store_open(path, 0, &state, err, sizeof(err)) == -1)
			_exit(PEER_FAILED);
		/* The periodic round is also the health check: ping (a
		 * changed key is caught and named here) and a signed hello,
		 * which keeps "connected both ways" current. */
		if (health && peer_hello(state, &w->id, &copy, err,
		    sizeof(err)) == -1) {
			log_warnx("%s: %s", copy.name, err);
			store_event(state, "warn", "sync", copy.name, "%s", err);
			_exit(PEER_FAILED);
		}
		if (syncrun_peer(state, w->conf, &w->id, &copy, what, &res) == -1)
			_exit(PEER_FAILED);
		sqlite3_close(state);
		_exit(res.counts.received + res.counts.files_received > 0 ?
		    PEER_RECEIVED : PEER_OK);
	}
	wp->pid = pid;
	wp->started_ms = now;
	util_strlcpy(wp->name, p->name, sizeof(wp->name));
}

/* A peer's sync ended with `code`: clear or extend its backoff. */
static void
peer_done(struct worker *w, struct wpeer *wp, int code, int64_t now)
{
	wp->pid = 0;
	if (code == PEER_OK || code == PEER_RECEIVED) {
		if (wp->failures > 0)
			log_info("%s is back after %d failed attempts",
			    wp->name, wp->failures);
		wp->failures = 0;
		wp->next_try_ms = 0;
		if (code == PEER_RECEIVED && w->hook_at == 0)
			w->hook_at = now + HOOK_DEBOUNCE_MS;
	} else {
		/* Exponential backoff with jitter: a dead peer costs one
		 * short attempt now and then, not every round. */
		int64_t delay = 1000LL << (wp->failures < 6 ? wp->failures : 6);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		delay += randombytes_uniform((uint32_t)(delay / 4 + 1));
		wp->failures++;
		wp->next_try_ms = now + delay;
		/* What it missed still has to reach it. */
		if (w->push_at == 0 || wp->next_try_ms < w->push_at)
			w->push_at = wp->next_try_ms;
		w->push_what = SYNCRUN_ALL;
	}
	if (wp->again) {
		w->push_what |= wp->again;
		wp->again = 0;
		if (w->push_at == 0 || w->push_at > now)
			w->push_at = wp->next_try_ms > now ? wp->next_try_ms : now;
	}
}

/* Collect finished peer syncs (and hook processes); stop overlong ones. */
static int
reap_children(struct worker *w, int64_t now)
{
	int running = 0, st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < w->npeers; i++)
			if (w->peers[i].pid == pid) {
				log_debug("sync %ld with %s ended: %s %d, again %d",
				    (long)pid, w->peers[i].name, WIFEXITED(st) ?
				    "exit" : "signal", WIFEXITED(st) ?
				    WEXITSTATUS(st) : WTERMSIG(st),
				    w->peers[i].again);
				peer_done(w, &w->peers[i], WIFEXITED(st) ?
				    WEXITSTATUS(st) : PEER_FAILED, now);
			}
	}
	for (int i = 0; i < w->npeers; i++) {
		struct wpeer *wp = &w->peers[i];
		if (wp->pid == 0)
			continue;
		if (now - wp->started_ms > PEER_BUDGET_MS) {
			log_warnx("sync with %s exceeded %lld s: stopped",
			    wp->name, PEER_BUDGET_MS / 1000);
			kill(wp->pid, SIGKILL);
		}
		running++;
	}
	return running;
}

/* Does a push round go to this peer?  A round that only relays changes
 * from some peers does not send them back to where they came from. */
static int
relay_to(const struct worker *w, const char *node)
{
	if (w->push_local)
		return 1;
	for (int i = 0; i < w->nrelay; i++)
		if (strcmp(w->relay_from[i], node) == 0)
			return 0;
	return 1;
}

/* Start a sync with every enabled peer that is not backing off and not
 * already syncing (that one gets another turn when it finishes). */
static void
sync_round(struct worker *w, int64_t now, int what)
{
	json_object *list = peers_list(w->state);
	size_t n = list ? json_object_array_length(list) : 0;
	int64_t retry_at = 0;

	for (size_t i = 0; i < n; i++) {
		json_object *pj = json_object_array_get_idx(list, i), *v;
		struct wpeer *wp;
		struct peer p;

		json_object_object_get_ex(pj, "node_id", &v);
		if (peers_by_node(w->state, json_object_get_string(v), &p) != 0 ||
		    !p.enabled || (wp = wpeer_of(w, p.id)) == NULL)
			continue;
		if (!relay_to(w, p.node_id))
			continue;
		if (wp->pid != 0) {
			log_debug("%s still syncing: again %#x", p.name, what);
			wp->again |= what;
			continue;
		}
		if (wp->next_try_ms > now) {
			/* What this round had to send still has to reach
			 * it: come back when its backoff ends. */
			if (retry_at == 0 || wp->next_try_ms < retry_at)
				retry_at = wp->next_try_ms;
			continue;
		}
		log_debug("sync with %s: what %#x", p.name, what);
		spawn_peer_sync(w, wp, &p, now, what);
	}
	json_object_put(list);
	w->nrelay = 0;
	w->push_local = 0;
	if (retry_at != 0 && (w->push_at == 0 || retry_at < w->push_at)) {
		w->push_at = retry_at;
		w->push_what |= what;
	}
}

static void
handle_wake(struct worker *w, const char *msg, int64_t now)
{
	if (strcmp(msg, "sync") == 0 || strcmp(msg, "peers") == 0) {
		/* Asked for, or the set of peers changed: try every peer
		 * now, even those backing off. */
		for (int i = 0; i < w->npeers; i++)
			w->peers[i].next_try_ms = 0;
		w->push_what = SYNCRUN_ALL;
		w->push_local = 1;
		w->push_at = now;
	} else if (strcmp(msg, "config") == 0) {
		char dbs[CONF_VAL_MAX];

		util_strlcpy(dbs, w->live.databases, sizeof(dbs));
		if (conf_reload_if_changed(&w->live, &w->conf_mtime)) {
			/* New databases get watched; the timer follows the
			 * new interval. */
			if (strcmp(dbs, w->live.databases) != 0) {
				for (int i = 0; i < w->ndbs; i++)
					sqlite3_close(w->dbs[i].conn);
				w->ndbs = 0;
				sync_db_each(&w->live, add_db, w);
			}
			w->periodic_at = now + (int64_t)w->live.sync_interval *
			    1000;
		}
	} else if (strncmp(msg, "applied", 7) == 0) {
		const char *from = msg[7] == ' ' ? msg + 8 : "";
		if (*from != '\0' && w->nrelay < WORKER_MAX_PEERS)
			util_strlcpy(w->relay_from[w->nrelay++], from,
			    sizeof(w->relay_from[0]));
		/* Changes arrived from one peer: pass them on to the others
		 * (relay) and let the application know. */
		if (w->push_at == 0)
			w->push_at = now + DB_DEBOUNCE_MS;
		w->push_what |= SYNCRUN_DB_PUSH | SYNCRUN_FILES_PUSH;
		if (w->hook_at == 0)
			w->hook_at = now + HOOK_DEBOUNCE_MS;
	}
}

static int
next_timeout(struct worker *w, int64_t now, int running)
{
	int64_t next = w->periodic_at;

	/* Children finishing are noticed by polling only while some run. */
	if (running && now + REAP_POLL_MS < next)
		next = now + REAP_POLL_MS;
	if (w->push_at != 0 && w->push_at < next)
		next = w->push_at;
	if (w->hook_at != 0 && w->hook_at < next)
		next = w->hook_at;
	if (w->scan_at != 0 && w->scan_at < next)
		next = w->scan_at;
	if (next <= now)
		return 0;
	return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

int
worker_run(const struct conf *c)
{
	struct itimerspec its = { { NODE_HEARTBEAT_S, 0 }, { NODE_HEARTBEAT_S, 0 } };
	char err[512], path[UTIL_PATH_MAX];
	struct sigaction sa;
	struct worker w;
	int lockfd, tfd = -1, wfd = -1;

	memset(&w, 0, sizeof(w));
	w.live = *c;
	w.conf = &w.live;
	c = &w.live;
	conf_reload_if_changed(&w.live, &w.conf_mtime);
	w.ino = -1;
	if ((lockfd = node_lock(c, "worker", err, sizeof(err))) == -1) {
		fprintf(stderr, "meshsync worker: %s\n", err);
		return 1;
	}
	w.lockfd = lockfd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Peer syncs and hooks are children, reaped in the loop. */
	signal(SIGCHLD, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	conf_path(c, path, sizeof(path), CONF_STATE_DB);
	if (store_open(path, 0, &w.state, err, sizeof(err)) == -1 ||
	    store_identity_load(w.state, &w.id) == -1) {
		log_err("state DB: %s", err);
		goto done;
	}
	/* A remote update cut short by a crash is finished or undone before
	 * anything else runs (update.h, "Crash safety"). */
	updaterun_recover(w.state, c, &w.id);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	w.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	wfd = wake_listen(c);
	if (tfd == -1 || timerfd_settime(tfd, 0, &its, NULL) == -1 ||
	    w.ino == -1 || wfd == -1) {
		log_err("worker set-up: %s", strerror(errno));
		goto done;
	}
	sync_db_each(c, add_db, &w);
	w.fcfg.root = c->instance_dir;
	w.fcfg.self = w.id.node_id;
	w.fcfg.ignore = c->ignore;
	w.fcfg.databases = c->databases;
	w.fcfg.max_conflicts = c->max_conflicts;
	if ((w.dirs = calloc(WORKER_MAX_WATCHES, sizeof(*w.dirs))) == NULL) {
		log_err("out of memory");
		goto done;
	}
	watch_tree(&w, "");
	w.scan_at = tm_now_ms();
	node_heartbeat(c);
	w.periodic_at = tm_now_ms() + 1000;	/* catch up soon after start */
	w.compact_at = tm_now_ms() + 3600 * 1000;
	log_info("sync worker started: %d database(s), sync every %d s",
	    w.ndbs, c->sync_interval);

	while (!worker_stop) {
		int running = reap_children(&w, tm_now_ms());
		struct pollfd pfd[3] = {
			{ .fd = tfd, .events = POLLIN },
			{ .fd = w.ino, .events = POLLIN },
			{ .fd = wfd, .events = POLLIN },
		};
		int64_t now = tm_now_ms();
		char buf[4096] __attribute__((aligned(8)));
		uint64_t ticks;

		/* Sleeps until a timer, a file event or a wake-up: no busy
		 * polling, so an idle node costs nothing. */
		if (poll(pfd, 3, next_timeout(&w, now, running)) == -1) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			break;
		}
		now = tm_now_ms();
		if ((pfd[0].revents & POLLIN) &&
		    read(tfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
			node_heartbeat(c);
		if (pfd[1].revents & POLLIN) {
			ssize_t n;
			while ((n = read(w.ino, buf, sizeof(buf))) > 0)
				file_events(&w, buf, n, now);
			db_changed(&w, now);
		}
		if (pfd[2].revents & POLLIN) {
			char msg[WAKE_MSG_MAX];
			while (wake_recv(wfd, msg, sizeof(msg)) > 0)
				handle_wake(&w, msg, now);
		}
		if (w.scan_at != 0 && now >= w.scan_at) {
			w.scan_at = 0;
			file_scan(&w, 1);
		}
		if (now >= w.periodic_at) {
			/* The periodic run rescans too: a safety net for
			 * events inotify missed (overflow, other mounts). */
			file_scan(&w, 0);
			w.periodic_at = now + (int64_t)c->sync_interval * 1000;
			w.push_at = 0;
			w.push_what = 0;
			sync_round(&w, now, SYNCRUN_ALL);
		} else if (w.push_at != 0 && now >= w.push_at) {
			int what = w.push_what ? w.push_what : SYNCRUN_ALL;
			w.push_at = 0;
			w.push_what = 0;
			sync_round(&w, now, what);
		}
		reap_children(&w, tm_now_ms());
		if (now >= w.compact_at) {
			char why[512];
			w.compact_at = now + COMPACT_EVERY_MS;
			if (syncrun_compact(w.state, c, &w.id, why,
			    sizeof(why)) < 0)
				log_info("compaction skipped: %s", why);
		}
		if (w.hook_at != 0 && tm_now_ms() >= w.hook_at) {
			w.hook_at = 0;
			run_hook(&w);
		}
	}
	for (int i = 0; i < w.npeers; i++)
		if (w.peers[i].pid != 0) {
			kill(w.peers[i].pid, SIGTERM);
			waitpid(w.peers[i].pid, NULL, 0);
		}
	log_info("sync worker stopped");
done:
	for (int i = 0; i < w.ndbs; i++)
		sqlite3_close(w.dbs[i].conn);
	for (int i = 0; i < w.ndirs; i++)
		free(w.dirs[i].rel);
	free(w.dirs);
	sqlite3_close(w.state);
	if (tfd != -1)
		close(tfd);
	if (w.ino != -1)
		close(w.ino);
	wake_close(c, wfd);
	if (node_run_path(c, path, sizeof(path), "worker.heartbeat") == 0)
		unlink(path);
	node_unlock(c, "worker", lockfd);
	return 0;
}
