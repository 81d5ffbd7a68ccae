/* msign.c - test helper: print an X-Meshsync-Signature value for a crafted request,
 * so shell tests can send good, tampered, stale and replayed peer requests with curl.
 * usage: msign NODE_DIR TO_NODE_ID METHOD URI BODY_FILE [TS_MS|now] [NONCE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "sign.h"
#include "store.h"
#include "tm.h"
#include "util.h"

int
main(int argc, char **argv)
{
	char db_path[UTIL_PATH_MAX], err[256], hash[KEYS_HASH_HEX];
	char hdr[SIGN_HEADER_MAX], *body = NULL;
	struct store_identity id;
	size_t len = 0;
	int64_t ts = 0;
	sqlite3 *db = NULL;

	if (argc < 6 || keys_init() == -1) {
		fprintf(stderr, "usage: msign NODE_DIR TO METHOD URI BODY_FILE "
		    "[TS_MS] [NONCE]\n");
		return 2;
	}
	util_fmt(db_path, sizeof(db_path), "%s/meshsync.db", argv[1]);
	if (store_open(db_path, 0, &db, err, sizeof(err)) == -1 ||
	    store_identity_load(db, &id) == -1) {
		fprintf(stderr, "msign: %s\n", err);
		return 1;
	}
	sqlite3_close(db);
	if (strcmp(argv[5], "-") != 0 &&
	    util_read_file(argv[5], 1 << 30, &body, &len) == -1) {
		perror(argv[5]);
		return 1;
	}
	keys_sha256_hex(hash, body ? body : "", len);
	free(body);
	if (argc > 6 && strcmp(argv[6], "now") != 0)
		ts = strtoll(argv[6], NULL, 10);
	if (sign_request(hdr, sizeof(hdr), &id, argv[2], argv[3], argv[4], hash,
	    ts, argc > 7 ? argv[7] : NULL) == -1) {
		fprintf(stderr, "msign: cannot sign\n");
		return 1;
	}
	puts(hdr);
	return 0;
}
