/* sign.h - the peer request signature: what is signed and the header that carries it. */
#ifndef MESHSYNC_SIGN_H
#define MESHSYNC_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "store.h"

#define SIGN_HEADER		"X-Meshsync-Signature"
#define SIGN_CGI_PARAM		"HTTP_X_MESHSYNC_SIGNATURE"
#define SIGN_WINDOW_MS		(300 * 1000)	/* accepted clock difference */
#define SIGN_NONCE_HEX		33
#define SIGN_HEADER_MAX		512

/*
 * A signed request carries, in one header,
 *   node=<sender id>, to=<receiver id>, ts=<ms UTC>, nonce=<hex>, sig=<hex>
 * and the Ed25519 signature covers
 *   "meshsync-sig-v1" LF METHOD LF REQUEST-URI LF TO LF TS LF NONCE LF
 *   SHA-256(body) in hex
 * Naming the receiver stops a request captured on its way to one node
 * from being replayed to another; the nonce and timestamp stop replays
 * to the same node.
 */
struct sign_hdr {
	char	 node[STORE_NODE_ID_LEN];
	char	 to[STORE_NODE_ID_LEN];
	int64_t	 ts_ms;
	char	 nonce[SIGN_NONCE_HEX];
	char	 sig[KEYS_SIG_HEX];
};

/*
 * Sign a request from `self` to node `to` and format the header value into
 * out.  nonce and ts_ms may be NULL/0 for a fresh random nonce and now.
 * Returns 0, or -1 on truncation or a malformed key.
 */
int	 sign_request(char *out, size_t outsz, const struct store_identity *self,
	    const char *to, const char *method, const char *uri,
	    const char *body_sha256_hex, int64_t ts_ms, const char *nonce);

/* Parse a header value.  Returns 0, or -1 with a reason in err. */
int	 sign_parse(const char *value, struct sign_hdr *h, char *err,
	    size_t errsz);

/*
 * Responses to signed requests are signed too, so a machine in the middle
 * cannot feed a node forged changes: the signature in SIGN_RESP_HEADER
 * covers "meshsync-resp-v1" LF REQUEST-NONCE LF STATUS LF SHA-256(body).
 */
#define SIGN_RESP_HEADER	"X-Meshsync-Response-Signature"
int	 sign_response(char sig_hex[KEYS_SIG_HEX],
	    const struct store_identity *self, const char *req_nonce,
	    long status, const char *body_sha256_hex);
int	 sign_response_verify(const char *sig_hex, const char *pk_hex,
	    const char *req_nonce, long status, const char *body_sha256_hex);

/* Check h's signature under the sender's pinned public key.  0 or -1. */
int	 sign_verify(const struct sign_hdr *h, const char *pk_hex,
	    const char *method, const char *uri, const char *body_sha256_hex);

#endif
