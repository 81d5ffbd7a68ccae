/*
 * sync-breakdown.c - where a database sync spends its CPU, per row, with
 * the engine's own functions in one process: no nginx, no HTTP, no
 * signatures.  The rows are those of t/bench/3002 (new 3-column rows);
 * each stage is timed on its own, and the sum is set against what the
 * sync-throughput target (10% of the raw insert rate, measured here in
 * the same run) allows on this machine's cores.  Usage: sync-breakdown
 * [ROWS].
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbsync.h"
#include "dbtest.h"
#include "util.h"

#define SCHEMA	"CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, city TEXT);" \
		"CREATE TABLE plain(id INTEGER PRIMARY KEY, name TEXT, city TEXT);"
#define FILL	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c " \
		"WHERE x < %d) INSERT INTO %s SELECT x, 'name ' || x, " \
		"'city ' || (x %% 977) FROM c"

enum { HARVEST, FEED, ENCODE, DECODE, CHECK, APPLY, NSTAGE };

static const char *const stage_name[NSTAGE] = {
	[HARVEST] = "harvest (captures -> change log, shadow)",
	[FEED] = "feed (change log -> batch)",
	[ENCODE] = "encode (batch -> JSON text)",
	[DECODE] = "decode (JSON text -> tree, and free)",
	[CHECK] = "check (dbsync_batch_parse)",
	[APPLY] = "apply (shadow, log, app row, commit)",
};

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "sync-breakdown: %s: %s\n", what, err);
	dbt_cleanup();
	exit(1);
}

/* The raw rate: rows/s of the same insert into an untracked table, one
 * transaction, best of 3 (as t/bench/3002 takes it). */
static double
raw_rate(sqlite3 *app, int n)
{
	double best = 0, r;
	uint64_t t0;
	int i;

	for (i = 0; i < 3; i++) {
		dbt_exec(app, "DELETE FROM plain");
		t0 = util_mono_us();
		if (dbt_exec(app, FILL, n, "plain") == -1)
			die("insert", "untracked table");
		r = n / ((double)(util_mono_us() - t0) / 1e6);
		if (r > best)
			best = r;
	}
	return best;
}

int
main(int argc, char **argv)
{
	struct tnode a, b;
	struct dbsync_stats st;
	struct dbsync_batch *pb;
	json_object *vv = NULL, *batch, *tree, *m;
	uint64_t us[NSTAGE] = { 0 }, t0, sum = 0;
	double raw, per, budget;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long long entries = 0;
	char err[512];
	const char *text;
	int n = argc > 1 ? atoi(argv[1]) : 200000, more = 1, i;

#if defined(__GLIBC__) && defined(M_MXFAST)
	mallopt(M_MXFAST, 0);	/* as the meshsync processes run (main.c) */
#endif
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (n < 1000)
		n = 1000;
	if (cores < 1)
		cores = 1;
	dbt_scratch();
	dbt_node(&a, "bench-node-aaaaaaaaaaaaaaaaaaaa", SCHEMA);
	dbt_node(&b, "bench-node-bbbbbbbbbbbbbbbbbbbb", SCHEMA);
	if (dbt_track(&a, "items") == -1 || dbt_track(&b, "items") == -1)
		die("track", "items");
	raw = raw_rate(a.app, n);
	if (dbt_exec(a.app, FILL, n, "items") == -1)
		die("insert", "tracked table");

	t0 = util_mono_us();
	if (dbsync_harvest(a.db, a.id, dbt_now(), NULL, err, sizeof(err)) !=
	    DBSYNC_OK)
		die("harvest", err);
	us[HARVEST] = util_mono_us() - t0;
	while (more) {
		if (dbsync_vv(b.db, &vv, err, sizeof(err)) == -1)
			die("vv", err);
		t0 = util_mono_us();
		if (dbsync_feed(a.db, vv, DBSYNC_MAX_BATCH, DBSYNC_WIRE, &batch,
		    err, sizeof(err)) != DBSYNC_OK)
			die("feed", err);
		us[FEED] += util_mono_us() - t0;
		json_object_put(vv);

		t0 = util_mono_us();
		text = json_object_to_json_string_ext(batch,
		    JSON_C_TO_STRING_PLAIN);
		us[ENCODE] += util_mono_us() - t0;
		t0 = util_mono_us();
		tree = json_tokener_parse(text);
		us[DECODE] += util_mono_us() - t0;
		json_object_put(batch);
		if (tree == NULL)
			die("decode", "json_tokener_parse failed");

		t0 = util_mono_us();
		if (dbsync_batch_parse(tree, dbt_now(), 60000, &pb, err,
		    sizeof(err)) != DBSYNC_OK)
			die("check", err);
		us[CHECK] += util_mono_us() - t0;
		t0 = util_mono_us();
		if (dbsync_apply_parsed(b.db, b.id, pb, dbt_now(), 60000, &st,
		    err, sizeof(err)) != DBSYNC_OK)
			die("apply", err);
		us[APPLY] += util_mono_us() - t0;
		dbsync_batch_free(pb);
		entries += st.applied;
		more = json_object_object_get_ex(tree, "more", &m) &&
		    json_object_get_boolean(m);
		t0 = util_mono_us();
		json_object_put(tree);
		us[DECODE] += util_mono_us() - t0;
	}
	if (dbt_int(b.app, "SELECT count(*) FROM items") != n)
		die("apply", "b does not have every row");

	printf("sync CPU per row, in one process (%d new 3-column rows, %lld "
	    "entries, wire %d, batches of %d entries)\n", n, entries,
	    DBSYNC_WIRE, DBSYNC_MAX_BATCH);
	printf("%-48s %10s\n", "stage", "us/row");
	for (i = 0; i < NSTAGE; i++) {
		printf("%-48s %10.2f\n", stage_name[i], (double)us[i] / n);
		sum += us[i];
	}
	per = (double)sum / n;
	/* At 10% of the raw rate a row may take 10/raw s of wall time, on
	 * every core at once if the stages overlapped perfectly. */
	budget = (double)cores * 1e6 / (0.1 * raw);
	printf("%-48s %10.2f\n", "sum", per);
	printf("%-48s %10.0f\n", "raw insert, untracked (rows/s, best of 3)",
	    raw);
	printf("%-48s %10.2f\n", "budget at 10% of raw on all cores (us/row)",
	    budget);
	printf("%-48s %10.0f  (%.1f%% of raw, %ld cores)\n",
	    "best case of these stages (rows/s)", cores * 1e6 / per,
	    100 * cores * 1e6 / per / raw, cores);
	dbt_node_close(&a);
	dbt_node_close(&b);
	dbt_cleanup();
	return 0;
}
