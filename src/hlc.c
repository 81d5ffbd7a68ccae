/* hlc.c - hybrid logical clock arithmetic and its persistence in the app DB. */
#include "hlc.h"

#include "tm.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
hlc_pack(int64_t wall_ms, unsigned counter)
{
	if (wall_ms < 0)
		wall_ms = 0;
	if (wall_ms > HLC_WALL_MAX)
		wall_ms = HLC_WALL_MAX;
	return ((uint64_t)wall_ms << HLC_COUNTER_BITS) |
	    (counter & HLC_COUNTER_MAX);
}

int64_t
hlc_wall(uint64_t h)
{
	return (int64_t)(h >> HLC_COUNTER_BITS);
}

unsigned
hlc_counter(uint64_t h)
{
	return (unsigned)(h & HLC_COUNTER_MAX);
}

int64_t
hlc_now_ms(void)
{
	return tm_now_ms();
}

/* Bump to the next value after h: counter+1, or the next millisecond. */
static uint64_t
hlc_next(uint64_t h)
{
	if (hlc_counter(h) < HLC_COUNTER_MAX)
		return h + 1;
	return hlc_pack(hlc_wall(h) + 1, 0);
}

uint64_t
hlc_tick(uint64_t last, int64_t now_ms)
{
	if (now_ms > hlc_wall(last))
		return hlc_pack(now_ms, 0);
	return hlc_next(last);
}

int
hlc_merge(uint64_t last, uint64_t remote, int64_t now_ms,
    int64_t max_future_ms, uint64_t *out)
{
	uint64_t m;

	if (hlc_wall(remote) > now_ms + max_future_ms)
		return -1;
	m = last > remote ? last : remote;
	if (now_ms > hlc_wall(m))
		*out = hlc_pack(now_ms, 0);
	else
		*out = hlc_next(m);
	return 0;
}

int
hlc_cmp(uint64_t a, const char *node_a, uint64_t b, const char *node_b)
{
	if (a != b)
		return a < b ? -1 : 1;
	return strcmp(node_a ? node_a : "", node_b ? node_b : "");
}

int
hlc_fmt_time(int64_t wall_ms, char *buf, size_t bufsz)
{
	struct tm tm;
	time_t t = (time_t)(wall_ms / 1000);
	int n;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	n = snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
	if (n < 0 || (size_t)n >= bufsz)
		return -1;
	return 0;
}

int
hlc_load(sqlite3 *db, uint64_t *out, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	*out = 0;
	if (sqlite3_prepare_v2(db, "SELECT value FROM _meshsync_meta "
	    "WHERE key = 'hlc'", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(st, 0);
		*out = v > 0 ? (uint64_t)v : 0;
	} else if (rc != SQLITE_DONE)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		snprintf(err, errsz, "hlc load: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}

int
hlc_store(sqlite3 *db, uint64_t h, char *err, size_t errsz)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	/* max() keeps the stored clock monotonic even if a caller passes an
	 * older value (e.g. two engines on one DB). */
	if (sqlite3_prepare_v2(db, "INSERT INTO _meshsync_meta(key, value) "
	    "VALUES('hlc', ?1) ON CONFLICT(key) DO UPDATE SET "
	    "value = max(value, excluded.value)", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)h);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	ret = 0;
fail:
	if (ret == -1)
		snprintf(err, errsz, "hlc store: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}
