/* wake.h - the local wake-up socket: the pool (and CLI) tell the worker to act now. */
#ifndef MESHSYNC_WAKE_H
#define MESHSYNC_WAKE_H

#include <stddef.h>

#include "conf.h"

#define WAKE_MSG_MAX	256

/*
 * Bind DIR/run/worker.sock (a unix datagram socket) for the worker.
 * Returns a non-blocking fd, or -1 with errno set.
 */
int	 wake_listen(const struct conf *c);

/* Close the socket and remove its file. */
void	 wake_close(const struct conf *c, int fd);

/*
 * Send one message ("sync", "sync <peer node id>", "nudge <node id>") to
 * the worker.  Never blocks.  Returns 0 when delivered, -1 when no worker
 * listens (or its queue is full).
 */
int	 wake_send(const struct conf *c, const char *msg);

/* "applied <node id>": changes from that peer were applied here, so the
 * worker relays them to every other peer and runs the hook. */
int	 wake_applied_from(const struct conf *c, const char *node_id);

/* Read one pending message into buf (NUL-terminated).  Returns its length,
 * 0 when none is pending, -1 on error. */
int	 wake_recv(int fd, char *buf, size_t bufsz);

#endif
