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
#include "fuzz.h"
#include "log.h"

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
	struct dbsync_batch *b = NULL;
	json_object *j;
	char err[512];

	if ((j = fuzz_json(data, size, INPUT_MAX)) == NULL)
		return 0;
	(void)dbsync_batch_len(j);
	json_object_put(dbsync_batch_tops(j));
	if (dbsync_batch_parse(j, FUZZ_NOW_MS, 60000, &b, err, sizeof(err)) ==
	    DBSYNC_OK)
		dbsync_batch_free(b);
	else if (b != NULL)
		__builtin_trap();	/* a refusal hands back nothing */
	json_object_put(j);
	return 0;
}
