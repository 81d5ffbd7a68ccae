/*
 * client.c - libFuzzer target: an offline client's request body, applied
 * (t/fuzz/run).  dbsync_apply_client runs on a scratch node with the
 * tables of t/unit/3003 tracked; it must answer OK or bad input (or an
 * internal error) without crashing, leaking or undefined behaviour, and
 * leave the database intact.  The state carries over between inputs, so
 * later inputs meet rows and clocks earlier ones made.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <json-c/json.h>
#include <sodium.h>

#include "dbsync.h"
#include "dbtest.h"
#include "fuzz.h"
#include "log.h"

#define INPUT_MAX	(64 << 10)

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct tnode node;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	log_open("/dev/null", "fuzz", LOG_LVL_DEBUG);
	dbt_scratch();
	dbt_node(&node, "fuzz-node", "CREATE TABLE notes(id INTEGER PRIMARY "
	    "KEY, title TEXT NOT NULL, body TEXT, score REAL, data BLOB);"
	    "CREATE TABLE tags(code TEXT PRIMARY KEY, label TEXT NOT NULL) "
	    "WITHOUT ROWID;"
	    "CREATE TABLE pairs(a INTEGER, b TEXT, v, PRIMARY KEY(a, b));");
	if (dbt_track(&node, "notes") == -1 || dbt_track(&node, "tags") == -1 ||
	    dbt_track(&node, "pairs") == -1)
		abort();
	atexit(dbt_cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dbsync_stats st;
	json_object *j;
	char err[512];

	if ((j = fuzz_json(data, size, INPUT_MAX)) == NULL)
		return 0;
	(void)dbsync_apply_client(node.db, node.id, j, FUZZ_NOW_MS, &st, err,
	    sizeof(err));
	json_object_put(j);
	if (dbt_int(node.db, "SELECT count(*) FROM pragma_integrity_check "
	    "WHERE integrity_check != 'ok'") != 0)
		__builtin_trap();
	return 0;
}
