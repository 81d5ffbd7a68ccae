/* worker.c - the worker's event loop: timers now; watchers and peer sync hang off it. */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "node.h"
#include "util.h"

static volatile sig_atomic_t worker_stop;

static void
on_stop(int sig)
{
	(void)sig;
	worker_stop = 1;
}

int
worker_run(const struct conf *c)
{
	struct itimerspec its = { { NODE_HEARTBEAT_S, 0 }, { NODE_HEARTBEAT_S, 0 } };
	struct sigaction sa;
	char err[256];
	int lockfd, tfd;

	if ((lockfd = node_lock(c, "worker", err, sizeof(err))) == -1) {
		fprintf(stderr, "meshsync worker: %s\n", err);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (tfd == -1 || timerfd_settime(tfd, 0, &its, NULL) == -1) {
		log_err("timerfd: %s", strerror(errno));
		node_unlock(c, "worker", lockfd);
		return 1;
	}
	node_heartbeat(c);
	log_info("sync worker started");
	while (!worker_stop) {
		struct pollfd pfd = { .fd = tfd, .events = POLLIN };
		uint64_t ticks;

		/* Blocks until the next timer: no busy polling when idle. */
		if (poll(&pfd, 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			break;
		}
		if (read(tfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
			node_heartbeat(c);
	}
	close(tfd);
	log_info("sync worker stopped");
	{
		char hb[UTIL_PATH_MAX];
		if (node_run_path(c, hb, sizeof(hb), "worker.heartbeat") == 0)
			unlink(hb);
	}
	node_unlock(c, "worker", lockfd);
	return 0;
}
