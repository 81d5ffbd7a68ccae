/* syncrun.h - "sync now" with real peers: the engine over signed HTTP, logged; used by CLI, API and worker. */
#ifndef MESHSYNC_SYNCRUN_H
#define MESHSYNC_SYNCRUN_H

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"
#include "peers.h"
#include "store.h"
#include "sync.h"

struct syncrun_result {
	struct sync_counts	 counts;
	int			 ok;
	char			 error[512];
};

/*
 * Sync every configured database with peer p, both ways.  The run is
 * recorded in the activity log ("N sent, M received, K conflicts" or the
 * error) and in the peer's last_ok / last_error.  Returns 0 or -1.
 */
int	 syncrun_peer(sqlite3 *state, const struct conf *c,
	    const struct store_identity *id, struct peer *p,
	    struct syncrun_result *res);

/*
 * Sync with every enabled peer, or only `only` (a name, node id or number).
 * Returns a JSON object {"peers": [{peer, ok, sent, received, conflicts,
 * error?}], "sent", "received", "conflicts", "failed"} the caller puts, or
 * NULL when `only` names no peer.
 */
json_object *syncrun_all(sqlite3 *state, const struct conf *c,
	    const struct store_identity *id, const char *only);

/* "N sent, M received, K conflicts" into buf. */
void	 syncrun_summary(char *buf, size_t bufsz, const struct sync_counts *n);

#endif
