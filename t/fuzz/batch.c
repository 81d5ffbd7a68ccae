/*
 * batch.c - libFuzzer target: a peer's batch, as received (t/fuzz/run).
 * Any JSON is read by the helpers documented for unchecked batches, then
 * checked by dbsync_batch_parse, which must refuse or accept it without
 * crashing, leaking or undefined behaviour.
 */
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "dbsync.h"
#include "log.h"

#define NOW_MS		1800000000000LL
#define INPUT_MAX	(1 << 20)

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_open("/dev/null", "fuzz", LOG_LVL_DEBUG);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct dbsync_batch *b = NULL;
	json_object *j;
	char err[512];

	if (size > INPUT_MAX || (tok = json_tokener_new()) == NULL)
		return 0;
	j = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (j == NULL)
		return 0;
	(void)dbsync_batch_len(j);
	json_object_put(dbsync_batch_tops(j));
	if (dbsync_batch_parse(j, NOW_MS, 60000, &b, err, sizeof(err)) ==
	    DBSYNC_OK)
		dbsync_batch_free(b);
	else if (b != NULL)
		__builtin_trap();	/* a refusal hands back nothing */
	json_object_put(j);
	return 0;
}
