/* peers.h - pinned peers and seen nonces in the state DB. */
#ifndef MESHSYNC_PEERS_H
#define MESHSYNC_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "keys.h"
#include "store.h"

#define PEERS_NAME_MAX	128
#define PEERS_URL_MAX	256

struct peer {
	int	 id;
	char	 node_id[STORE_NODE_ID_LEN];
	char	 name[PEERS_NAME_MAX];
	char	 url[PEERS_URL_MAX];		/* "http://host:port" */
	char	 pubkey[KEYS_PK_HEX];
	int	 enabled;
	int	 they_know_us;			/* they accepted our signature */
};

/*
 * Check and normalise a peer address: "host", "host:port", "http://host",
 * "https://host:port/" become "scheme://host[:port]" (no path).  Returns
 * 0, or -1 with a reason.
 */
int	 peers_normalize_url(const char *in, char *out, size_t outsz,
	    char *err, size_t errsz);

/*
 * Find a peer by numeric id, node id or name (in that order).  Returns 0
 * and fills p, 1 when there is none, -1 on error.
 */
int	 peers_find(sqlite3 *db, const char *key, struct peer *p);
/* By node id only (for signature checks). */
int	 peers_by_node(sqlite3 *db, const char *node_id, struct peer *p);

/* Pin a new peer.  Refuses an already pinned node id or a taken name.
 * Fills p->id.  Returns 0, or -1 with a reason. */
int	 peers_add(sqlite3 *db, struct peer *p, char *err, size_t errsz);

/* Enable/disable, remove, replace the pinned key.  0 or -1. */
int	 peers_set_enabled(sqlite3 *db, int id, int enabled);
int	 peers_remove(sqlite3 *db, int id);
int	 peers_repin(sqlite3 *db, int id, const char *pubkey);

/* Record contact results: field is "seen", "ok" or "error" (msg used for
 * "error"); they_know_us is set when >= 0. */
void	 peers_note(sqlite3 *db, int id, const char *field, const char *msg,
	    int they_know_us);

/* Every peer as a JSON array (id, node_id, name, url, scheme, host, port,
 * fingerprint, enabled, they_know_us, connected, last_*).  Caller puts. */
json_object *peers_list(sqlite3 *db);

/*
 * Remember a nonce from node_id.  Returns 0 when new, 1 when it was seen
 * before (a replay), -1 on error.  Nonces older than the signature window
 * are reaped here, so the table stays small.
 */
int	 peers_nonce_use(sqlite3 *db, const char *node_id, const char *nonce,
	    int64_t ts_ms, int64_t now_ms);

#endif
