/* pool.h - the FastCGI pool: a master that pre-forks request workers on one socket. */
#ifndef MESHSYNC_POOL_H
#define MESHSYNC_POOL_H

#include "conf.h"

/*
 * Listen on DIR/run/fcgi.sock, fork conf->workers request workers and keep
 * that many alive until SIGTERM/SIGINT; then stop them and remove the
 * socket.  Returns the process exit status (0 clean, 1 on start failure).
 */
int	 pool_run(const struct conf *c);

#endif
