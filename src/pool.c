/* pool.c - pre-forked libfcgi workers under a supervising master. */
#include "pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "keys.h"
#include "log.h"
#include "node.h"
#include "req.h"
#include "routes.h"
#include "store.h"
#include "util.h"

#define POOL_BACKLOG		256
#define POOL_MAX_WORKERS	256

static volatile sig_atomic_t pool_stop;

static void
on_stop(int sig)
{
	(void)sig;
	pool_stop = 1;
}

/* One request worker: its own state DB handle (SQLite handles must not
 * cross fork), then accept/dispatch until told to stop. */
static void __attribute__((noreturn))
serve(const struct conf *c, int listen_fd)
{
	char dbpath[UTIL_PATH_MAX], tdir[UTIL_PATH_MAX], err[256];
	struct store_identity id;
	struct req_ctx ctx;
	struct conf cur = *c;
	long long conf_mtime = 0;
	FCGX_Request fr;
	sqlite3 *db = NULL;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	conf_path(c, dbpath, sizeof(dbpath), CONF_STATE_DB);
	if (store_open(dbpath, 0, &db, err, sizeof(err)) == -1 ||
	    store_identity_load(db, &id) == -1) {
		log_err("cannot open state: %s", err);
		_exit(1);
	}
	util_fmt(tdir, sizeof(tdir), "%s/templates", node_share_dir());
	conf_reload_if_changed(&cur, &conf_mtime);	/* remember the mtime */
	ctx.conf = &cur;
	ctx.id = &id;
	ctx.db = db;
	if ((ctx.tmpl = tmpl_set_new(tdir, err, sizeof(err))) == NULL) {
		log_err("templates: %s", err);
		_exit(1);
	}

	if (FCGX_Init() != 0 || FCGX_InitRequest(&fr, listen_fd, 0) != 0) {
		log_err("FCGX_Init failed");
		_exit(1);
	}
	while (FCGX_Accept_r(&fr) >= 0) {
		struct req r;

		/* A saved config page applies without a restart: one stat()
		 * per request notices it. */
		conf_reload_if_changed(&cur, &conf_mtime);
		if (req_init(&r, &ctx, &fr) == 0)
			routes_dispatch(&r);
		req_finish(&r);
		FCGX_Finish_r(&fr);
	}
	tmpl_set_free(ctx.tmpl);
	sqlite3_close(db);
	_exit(0);
}

static pid_t
fork_worker(const struct conf *c, int fd)
{
	pid_t pid = fork();

	if (pid == 0)
		serve(c, fd);
	if (pid == -1)
		log_err("fork: %s", strerror(errno));
	return pid;
}

int
pool_run(const struct conf *c)
{
	char sock[UTIL_PATH_MAX], err[256];
	pid_t kids[POOL_MAX_WORKERS];
	int n = c->workers, fd, lockfd;
	struct sigaction sa;
	time_t window = time(NULL);
	int restarts = 0;

	if (n > POOL_MAX_WORKERS)
		n = POOL_MAX_WORKERS;
	if ((lockfd = node_lock(c, "fcgi", err, sizeof(err))) == -1) {
		fprintf(stderr, "meshsync fcgi: %s\n", err);
		return 1;
	}
	node_run_path(c, sock, sizeof(sock), "fcgi.sock");
	/* The lock proves no other pool owns a leftover socket file. */
	unlink(sock);
	umask(0077);
	fd = FCGX_OpenSocket(sock, POOL_BACKLOG);
	umask(0022);
	if (fd < 0) {
		fprintf(stderr, "meshsync fcgi: cannot listen on %s\n", sock);
		node_unlock(c, "fcgi", lockfd);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	for (int i = 0; i < n; i++)
		kids[i] = fork_worker(c, fd);
	log_info("FastCGI pool listening on %s with %d workers", sock, n);

	while (!pool_stop) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);

		if (pid == -1) {
			if (errno == EINTR || errno == ECHILD) {
				if (errno == ECHILD)
					sleep(1);
				continue;
			}
			break;
		}
		for (int i = 0; i < n; i++) {
			if (kids[i] != pid)
				continue;
			if (WIFSIGNALED(st))
				log_err("worker %ld killed by signal %d: "
				    "replacing it", (long)pid, WTERMSIG(st));
			else
				log_warnx("worker %ld exited with %d: "
				    "replacing it", (long)pid, WEXITSTATUS(st));
			/* A worker that cannot start would otherwise be
			 * re-forked in a tight loop. */
			if (time(NULL) != window) {
				window = time(NULL);
				restarts = 0;
			}
			if (++restarts > n * 2)
				sleep(1);
			kids[i] = fork_worker(c, fd);
		}
	}
	for (int i = 0; i < n; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGTERM);
	for (int i = 0; i < n; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	close(fd);
	unlink(sock);
	node_unlock(c, "fcgi", lockfd);
	log_info("FastCGI pool stopped");
	return 0;
}
