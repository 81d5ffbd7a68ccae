/* api.h - route handlers, grouped by the file that implements them. */
#ifndef MESHSYNC_API_H
#define MESHSYNC_API_H

#include "req.h"

/* 2: remote update (/api/sync/update*, the "update" capability). */
#define MESHSYNC_PROTOCOL	2

/* api_node.c: this node's identity and condition */
int	 api_ping(struct req *);
int	 api_health(struct req *);
int	 api_status(struct req *);
int	 api_events_auth(struct req *);

/* api_peers.c: pairing */
int	 api_hello(struct req *);
int	 api_peers_list(struct req *);
int	 api_peers_add(struct req *);
int	 api_peers_action(struct req *);

/* api_sync.c: database sync */
/* Tell the worker a peer's changes were applied here (relay, hook). */
void	 wake_applied(struct req *);
int	 api_changes(struct req *);
int	 api_receive_changes(struct req *);
int	 api_data(struct req *);
int	 api_sync_now(struct req *);
int	 api_trigger(struct req *);
int	 api_database(struct req *);

/* api_files.c: file sync */
struct files_cfg;
void	 api_files_cfg(const struct req_ctx *, struct files_cfg *);
int	 api_files_manifest(struct req *);
int	 api_files_cursor(struct req *);
int	 api_files_download(struct req *);
int	 api_files_bundle(struct req *);
int	 api_files_upload(struct req *);
int	 api_files_apply(struct req *);

/* api_update.c: remote update */
int	 api_update(struct req *);
int	 api_update_manifest(struct req *);
int	 api_update_file(struct req *);
int	 api_update_report(struct req *);
int	 api_update_status(struct req *);

/* api_locks.c: leases */
int	 api_lock_acquire(struct req *);
int	 api_lock_renew(struct req *);
int	 api_lock_release(struct req *);
int	 api_locks_list(struct req *);

#endif
