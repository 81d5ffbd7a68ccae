/* 3001-hlc.c - hybrid logical clock: packing, tick, merge, future guard, ordering, persistence. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "dbsync.h"
#include "hlc.h"
#include "tap.h"
#include "dbtest.h"

int
main(void)
{
	struct tnode n;
	uint64_t h, h2, a, b, got;
	char err[256], buf[64];
	int i, mono;

	if (sodium_init() < 0)
		return 1;
	h = hlc_pack(1700000000123LL, 7);
	tap_is_int(hlc_wall(h), 1700000000123LL, "pack/wall round-trip");
	tap_is_int(hlc_counter(h), 7, "pack/counter round-trip");
	tap_ok(hlc_pack(1, 0) > hlc_pack(0, 0xffff), "wall dominates counter");

	/* Tick: strictly increasing even when the wall clock goes back. */
	h = hlc_tick(0, 1000);
	tap_is_int((long long)h, (long long)hlc_pack(1000, 0), "first tick");
	h2 = hlc_tick(h, 900);
	tap_ok(h2 > h && hlc_wall(h2) == 1000 && hlc_counter(h2) == 1,
	    "wall clock went backwards: counter advances");
	h2 = hlc_tick(h2, 2000);
	tap_is_int((long long)h2, (long long)hlc_pack(2000, 0),
	    "wall clock ahead: counter resets");
	h = hlc_pack(5000, HLC_COUNTER_MAX);
	h2 = hlc_tick(h, 10);
	tap_ok(h2 > h && hlc_wall(h2) == 5001 && hlc_counter(h2) == 0,
	    "counter overflow bumps the millisecond");
	for (i = 0, mono = 1, h = 0; i < 100000; i++) {
		h2 = hlc_tick(h, 42);
		mono &= h2 > h;
		h = h2;
	}
	tap_ok(mono, "100000 ticks at a frozen clock stay strictly increasing");

	/* Merge. */
	a = hlc_pack(1000, 3);
	b = hlc_pack(1500, 9);
	tap_is_int(hlc_merge(a, b, 1200, 60000, &got), 0, "merge accepted");
	tap_ok(got > a && got > b, "merge result above both clocks");
	tap_is_int(hlc_merge(a, b, 3000, 60000, &got), 0, "merge, wall ahead");
	tap_is_int((long long)got, (long long)hlc_pack(3000, 0),
	    "merge takes the wall clock when it is ahead");
	got = 77;
	tap_is_int(hlc_merge(a, hlc_pack(100000, 0), 1000, 60000, &got), -1,
	    "remote clock 99 s ahead rejected (limit 60 s)");
	tap_is_int((long long)got, 77, "rejected merge leaves output alone");
	tap_is_int(hlc_merge(a, hlc_pack(61000, 0), 1000, 60000, &got), 0,
	    "remote clock exactly at the limit accepted");

	/* Compare. */
	tap_ok(hlc_cmp(5, "b", 6, "a") < 0, "clock decides before node");
	tap_ok(hlc_cmp(6, "b", 6, "a") > 0, "tie broken by node id");
	tap_ok(hlc_cmp(6, "a", 6, "a") == 0, "same clock, same node");
	tap_ok(hlc_cmp(6, NULL, 6, "") == 0, "NULL node compares as empty");

	tap_is_int(hlc_fmt_time(0, buf, sizeof(buf)), 0, "format time");
	tap_is_str(buf, "1970-01-01T00:00:00.000Z", "RFC 3339 UTC");
	hlc_fmt_time(1795358100123LL, buf, sizeof(buf));
	tap_is_str(buf, "2026-11-22T14:35:00.123Z", "RFC 3339 with ms");
	tap_is_int(hlc_fmt_time(0, buf, 10), -1, "truncation reported");

	/* Persistence: never goes backwards. */
	dbt_node(&n, "hlc", "CREATE TABLE t(id INTEGER PRIMARY KEY, v);");
	tap_is_int(hlc_load(n.db, &got, err, sizeof(err)), 0, "load empty");
	tap_is_int((long long)got, 0, "no clock yet");
	hlc_store(n.db, hlc_pack(9000, 4), err, sizeof(err));
	hlc_store(n.db, hlc_pack(8000, 0), err, sizeof(err));
	dbt_node_close(&n);
	dbt_node(&n, "hlc", NULL);	/* "restart" */
	hlc_load(n.db, &got, err, sizeof(err));
	tap_is_int((long long)got, (long long)hlc_pack(9000, 4),
	    "stored clock survives a restart and never decreases");
	/* The engine, with the wall clock at 50 and 100 ms: its change is
	 * logged above the stored clock. */
	if (dbsync_track(n.db, n.id, "t", 50, err, sizeof(err)) == -1 ||
	    dbt_exec(n.app, "INSERT INTO t VALUES(1, 'x')") == -1 ||
	    dbsync_harvest(n.db, n.id, 100, NULL, err, sizeof(err)) !=
	    DBSYNC_OK)
		tap_diag("harvest: %s", err);
	tap_ok(dbt_int(n.db, "SELECT min(hlc) FROM _meshsync_log") >
	    (long long)hlc_pack(9000, 4),
	    "after restart with a clock set back, changes are logged above "
	    "the stored clock");
	dbt_node_close(&n);
	dbt_cleanup();
	return tap_done();
}
