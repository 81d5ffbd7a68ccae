/* tm.c - UTC formatting and parsing, and zone lookups through the C library. */
#include "tm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int64_t
tm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

char *
tm_rfc3339(char *buf, size_t bufsz, int64_t ms)
{
	time_t s = (time_t)floor_div(ms, 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)s * 1000));
	return buf;
}

char *
tm_rfc3339_s(char *buf, size_t bufsz, int64_t ms)
{
	time_t s = (time_t)floor_div(ms, 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
	return buf;
}

static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

int
tm_parse_rfc3339(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
	struct tm tm;
	int64_t t;

	if (s == NULL || strlen(s) > 40)
		return -1;
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) ||
	    *s++ != '-' || digits(&s, 2, &d) || (*s != 'T' && *s != 't' &&
	    *s != ' '))
		return -1;
	s++;
	if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) ||
	    *s++ != ':' || digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		int n = 0;
		s++;
		while (isdigit((unsigned char)*s)) {
			if (n < 3)
				frac = frac * 10 + (*s - '0');
			n++;
			s++;
		}
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
	} else
		return -1;
	if (*s != '\0')
		return -1;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	{
		int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		int dm = mdays[mo - 1] + (mo == 2 && leap);
		if (d > dm)
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	t -= sign * (oh * 3600 + om * 60);
	*ms = t * 1000 + frac;
	return 0;
}

int
tm_zone_valid(const char *name)
{
	char path[UTIL_PATH_MAX];
	struct stat st;

	if (name == NULL || *name == '\0' || strlen(name) > 63)
		return 0;
	if (strcmp(name, "UTC") == 0)
		return 1;
	/* Only characters IANA names use, and never a path component. */
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '/' && *p != '_' &&
		    *p != '-' && *p != '+')
			return 0;
	if (name[0] == '/' || strstr(name, "//") != NULL)
		return 0;
	if (util_fmt(path, sizeof(path), "/usr/share/zoneinfo/%s", name) == -1)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
tm_zone_at(const char *zone, int64_t ms, struct tm_zone_info *zi)
{
	char *saved = NULL, *old = getenv("TZ");
	time_t s = (time_t)floor_div(ms, 1000);
	struct tm tm;
	long off, a;

	if (!tm_zone_valid(zone))
		return -1;
	/*
	 * localtime_r follows TZ; every meshsync process is single-threaded,
	 * so switching it for the call and back is safe.
	 */
	if (old != NULL && (saved = strdup(old)) == NULL)
		return -1;
	setenv("TZ", zone, 1);
	tzset();
	localtime_r(&s, &tm);
	if (saved != NULL) {
		setenv("TZ", saved, 1);
		free(saved);
	} else
		unsetenv("TZ");
	tzset();
	off = tm.tm_gmtoff;
	a = off < 0 ? -off : off;
	zi->offset_s = off;
	snprintf(zi->offset, sizeof(zi->offset), "%c%02ld:%02ld",
	    off < 0 ? '-' : '+', a / 3600, (a % 3600) / 60);
	snprintf(zi->abbrev, sizeof(zi->abbrev), "%s",
	    tm.tm_zone != NULL ? tm.tm_zone : "");
	snprintf(zi->date, sizeof(zi->date), "%04d-%02d-%02d",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	snprintf(zi->local, sizeof(zi->local), "%sT%02d:%02d:%02d%s",
	    zi->date, tm.tm_hour, tm.tm_min, tm.tm_sec, zi->offset);
	return 0;
}
