/* worker.h - the sync worker: the one process per node that talks to peers on its own schedule. */
#ifndef MESHSYNC_WORKER_H
#define MESHSYNC_WORKER_H

#include "conf.h"

/*
 * Run the worker until SIGTERM/SIGINT: one per node (exclusive lock), a
 * heartbeat every NODE_HEARTBEAT_S for health checks.  Returns the process
 * exit status.
 */
int	 worker_run(const struct conf *c);

#endif
