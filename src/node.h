/* node.h - a node's processes: run-dir files, single-instance locks, heartbeats, `up`. */
#ifndef MESHSYNC_NODE_H
#define MESHSYNC_NODE_H

#include <sys/types.h>

#include "conf.h"

#define NODE_HEARTBEAT_S	1	/* worker touches its heartbeat this often */
#define NODE_HEARTBEAT_STALE_S	5	/* health fails after this much silence */

/* DIR/run/NAME into buf.  Returns 0, or -1 on truncation. */
int	 node_run_path(const struct conf *c, char *buf, size_t bufsz,
	    const char *name);

/*
 * Take the exclusive lock DIR/run/NAME.lock and write our pid into
 * DIR/run/NAME.pid: only one `up`, pool or worker per node.  Returns the
 * lock fd (keep it open for the life of the process), or -1 with a reason
 * in err ("already running (pid 123)").
 */
int	 node_lock(const struct conf *c, const char *name, char *err,
	    size_t errsz);

/* Remove DIR/run/NAME.pid and NAME.lock and close fd (on clean exit). */
void	 node_unlock(const struct conf *c, const char *name, int fd);

/* Pid recorded in DIR/run/NAME.pid if that process is alive, else 0. */
pid_t	 node_pid_alive(const struct conf *c, const char *name);

/* Touch the worker heartbeat.  Returns 0/-1. */
int	 node_heartbeat(const struct conf *c);

/* Seconds since the worker's last heartbeat, or -1 when no worker runs. */
int	 node_worker_age(const struct conf *c);

/* True when something accepts TCP connections on the node's listen port. */
int	 node_port_ready(const struct conf *c);

/* Directory holding nginx/, templates/ and www/ (installed or source). */
const char *node_share_dir(void);

/* Options for node_up. */
struct node_up_opts {
	int	 quiet;		/* do not print the banner */
};

/*
 * Run a whole node in the foreground: render the nginx config into
 * DIR/run, start the FastCGI pool, the worker and nginx, supervise them,
 * and stop all three on SIGINT/SIGTERM.  Returns the exit status: 0 after a
 * clean stop, 1 on a start-up failure (one line on stderr says why).
 */
int	 node_up(const struct conf *c, const struct node_up_opts *opts);

#endif
