/* peer.h - the peer client: signed HTTP requests to other nodes (libcurl) and pairing by address. */
#ifndef MESHSYNC_PEER_H
#define MESHSYNC_PEER_H

#include <stddef.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "files.h"
#include "peers.h"
#include "store.h"

#define PEER_TIMEOUT_S		10	/* one request, connect included */
#define PEER_MAX_RESPONSE	(64LL << 20)

struct peer_resp {
	long	 status;	/* HTTP status, 0 when no answer */
	char	*body;		/* NUL-terminated, owned; free with peer_resp_free */
	size_t	 len;
	char	 err[256];	/* transport error or the JSON "error" field */
};

void	 peer_resp_free(struct peer_resp *resp);

/*
 * Fetch URL/api/sync/ping unsigned (the one unauthenticated call, used to
 * learn a new peer's identity).  On success *out is the parsed JSON
 * (caller puts) and 0 is returned; -1 with a reason otherwise.
 */
int	 peer_ping(const char *url, json_object **out, char *err, size_t errsz);

/*
 * One signed request from `self` to peer p: METHOD uri (path + query, as
 * sent) with an optional body.  Returns 0 when an HTTP answer came back
 * (any status; see resp->status), -1 on a transport failure (resp->err).
 */
int	 peer_call(const struct store_identity *self, const struct peer *p,
	    const char *method, const char *uri, const char *body, size_t len,
	    struct peer_resp *resp);

/*
 * Download a file from peer p (signed GET of uri) into out, streaming:
 * constant memory whatever the size, hashed on the way.  An interrupted
 * transfer is resumed with a Range request from what is already written
 * (a few times).  Downloads reuse one connection per peer.
 * Returns 0 when `size` bytes arrived (any complete answer when size is
 * -1), -1 with a reason.
 */
int	 peer_download(const struct store_identity *self, const struct peer *p,
	    const char *uri, struct files_sink *out, int64_t size, char *err,
	    size_t errsz);

/*
 * Upload the content of fd (size bytes, from offset 0) to peer p with a
 * signed POST of uri; the body hash is computed from the file first.
 * The JSON answer lands in resp as with peer_call.  Returns 0 when an
 * answer came back, -1 on a transport failure.
 */
int	 peer_upload(const struct store_identity *self, const struct peer *p,
	    const char *uri, int fd, int64_t size, struct peer_resp *resp);

/*
 * Pair with a node by address: ping it, refuse ourselves, pin its node id
 * and public key (trust on first use; with expect_key set, only that key),
 * then say hello with a signed request to learn whether it has pinned us
 * too.  name NULL takes the peer's own name.  Fills out.  Returns 0, or -1
 * with a reason in err.
 */
int	 peer_add_url(sqlite3 *db, const struct store_identity *self,
	    const char *url, const char *name, const char *expect_key,
	    struct peer *out, char *err, size_t errsz);

/*
 * Ask p whether it knows us (signed hello).  Updates they_know_us and the
 * last contact fields.  Returns 1 when connected both ways, 0 when the
 * peer answered that it has not added us, -1 when unreachable or refused
 * for another reason (err says why).
 */
int	 peer_hello(sqlite3 *db, const struct store_identity *self,
	    struct peer *p, char *err, size_t errsz);

/*
 * Re-pin p's key after it changed (a reinstalled node): fetch its ping,
 * check the node id is the same, store the new key.  Returns 0, or -1.
 */
int	 peer_repin(sqlite3 *db, struct peer *p, char *new_fp, size_t fpsz,
	    char *err, size_t errsz);

/*
 * A plain, unsigned GET of url (a health check): *status gets the HTTP
 * status.  Returns 0 when an answer came, -1 with a reason otherwise.
 */
int	 peer_http_status(const char *url, int timeout_s, long *status,
	    char *err, size_t errsz);

#endif
