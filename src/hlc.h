/* hlc.h - hybrid logical clock: orders changes across nodes despite clock skew. */
#ifndef MESHSYNC_HLC_H
#define MESHSYNC_HLC_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/*
 * An HLC value is 48 bits of wall-clock milliseconds since the Unix epoch
 * shifted left by 16, or'ed with a 16-bit logical counter.  It fits in a
 * positive int64 (47 bits of ms last until the year 6429), so it is
 * stored as a SQLite INTEGER and compared as a plain number.  Total order across nodes is the pair
 * (hlc, node id), ties broken by strcmp of the node ids.
 */
#define HLC_COUNTER_BITS	16
#define HLC_COUNTER_MAX		0xffffu
#define HLC_WALL_MAX		((INT64_C(1) << 47) - 1)
/* Default for the "remote clock too far ahead" guard. */
#define HLC_MAX_FUTURE_MS	60000

/* Pack a wall time (ms) and a counter; wall is clamped to [0, HLC_WALL_MAX]. */
uint64_t hlc_pack(int64_t wall_ms, unsigned counter);
/* Wall-clock milliseconds part of h. */
int64_t	 hlc_wall(uint64_t h);
/* Counter part of h. */
unsigned hlc_counter(uint64_t h);

/* Current wall clock in ms since the epoch (CLOCK_REALTIME). */
int64_t	 hlc_now_ms(void);

/*
 * Clock for a local event: strictly greater than `last`, and not earlier
 * than now_ms when the wall clock is ahead.  Never fails: when the counter
 * would overflow the wall part is bumped by one millisecond.
 */
uint64_t hlc_tick(uint64_t last, int64_t now_ms);

/*
 * Merge a clock received from a peer into `last`: the result is greater
 * than both `last` and `remote`.  Returns 0 and fills *out, or -1 (and
 * leaves *out alone) when remote's wall time is more than max_future_ms
 * ahead of now_ms, so one node with a bad clock cannot drag everyone's
 * clock (and win every write) into the future.
 */
int	 hlc_merge(uint64_t last, uint64_t remote, int64_t now_ms,
	    int64_t max_future_ms, uint64_t *out);

/*
 * Compare (a, node_a) with (b, node_b): <0, 0 or >0.  Node ids break ties
 * so every node picks the same winner.  NULL node ids compare as "".
 */
int	 hlc_cmp(uint64_t a, const char *node_a, uint64_t b,
	    const char *node_b);

/*
 * Format h's wall time as RFC 3339 UTC with milliseconds
 * ("2026-11-22T14:15:00.000Z") into buf.  Returns 0, or -1 on truncation.
 */
int	 hlc_fmt_time(int64_t wall_ms, char *buf, size_t bufsz);

/*
 * Persisted state, in the `_meshsync_meta` table of the application DB
 * (created by dbsync_open).  hlc_load puts the last issued or merged clock
 * in *out (0 when none yet) and returns 0, or -1 with err filled.
 * hlc_store only ever raises the stored value, so the clock never goes
 * backwards across restarts; call it inside the transaction that used the
 * clock so the two commit together.  Returns 0 or -1 with err filled.
 */
int	 hlc_load(sqlite3 *db, uint64_t *out, char *err, size_t errsz);
int	 hlc_store(sqlite3 *db, uint64_t h, char *err, size_t errsz);

#endif
