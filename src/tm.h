/* tm.h - time: UTC RFC 3339 timestamps and the node's display timezone. */
#ifndef MESHSYNC_TM_H
#define MESHSYNC_TM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TM_RFC3339_LEN	32	/* "2026-11-22T04:29:17.123Z" + NUL, with room */

/* Wall clock in milliseconds since the epoch (UTC). */
int64_t	 tm_now_ms(void);

/* Format ms since the epoch as UTC RFC 3339 with milliseconds and 'Z'.
 * Returns buf. */
char	*tm_rfc3339(char *buf, size_t bufsz, int64_t ms);

/* Same, second precision ("2026-11-22T04:29:17Z"). */
char	*tm_rfc3339_s(char *buf, size_t bufsz, int64_t ms);

/*
 * Parse RFC 3339 with an explicit offset ("...Z", "...+02:00", optional
 * fraction) into ms since the epoch.  A timestamp without an offset is
 * refused: a local time without its zone is exactly the bug this prevents.
 * Returns 0, or -1 for any malformed or out-of-range input.
 */
int	 tm_parse_rfc3339(const char *s, int64_t *ms);

/* True when name is a safe IANA zone name present in the zoneinfo
 * database ("UTC", "America/New_York"); never true for a path. */
int	 tm_zone_valid(const char *name);

/* What a zone says about an instant: its UTC offset, abbreviation and
 * local date, for status and display. */
struct tm_zone_info {
	long	 offset_s;	/* seconds east of UTC */
	char	 offset[24];	/* "+05:30" */
	char	 abbrev[16];	/* "EST" */
	char	 date[32];	/* local date "2026-11-21" */
	char	 local[64];	/* local time "2026-11-21T23:29:17-05:00" */
};

/* Fill zi for `zone` at ms.  Returns 0, or -1 when the zone is invalid. */
int	 tm_zone_at(const char *zone, int64_t ms, struct tm_zone_info *zi);

#endif
