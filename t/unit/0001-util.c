/* 0001-util.c - base modules: bounded strings, numbers, atomic files, config, time, keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "keys.h"
#include "log.h"
#include "tap.h"
#include "tm.h"
#include "util.h"

static void *
bump(void *arg)
{
	++*(int *)arg;
	return NULL;
}

static void
test_bg(void)
{
	struct util_bg bg;
	int runs = 0;

	util_bg_run(&bg, bump, &runs);
	util_bg_wait(&bg);
	tap_is_int(runs, 1, "bg: the work has run exactly once after the wait");
}

static void
test_list(void)
{
	const char *p = " app.db,,audit.db\t, x ";
	char item[8], got[64] = "";

	while ((p = util_list_next(p, item, sizeof(item))) != NULL) {
		strcat(got, item);
		strcat(got, "|");
	}
	tap_is_str(got, "app.db|x|", "list: items split on spaces, tabs and "
	    "commas; one too long for the buffer skipped");
	tap_ok(util_list_next("  , \t", item, sizeof(item)) == NULL,
	    "list: only separators is empty");
}

static void
test_strings(void)
{
	char buf[8];
	long long v;
	const char *es;

	tap_is_int(util_strlcpy(buf, "short", sizeof(buf)), 0, "strlcpy fits");
	tap_is_int(util_strlcpy(buf, "much too long", sizeof(buf)), -1,
	    "strlcpy reports truncation");
	tap_is_str(buf, "much to", "truncated copy is NUL-terminated");
	tap_is_int(util_fmt(buf, sizeof(buf), "%d", 1234567), 0, "fmt fits");
	tap_is_int(util_fmt(buf, sizeof(buf), "%d", 12345678), -1,
	    "fmt reports truncation");
	tap_ok(util_strtonum("42", 0, 100, &v, &es) == 0 && v == 42,
	    "strtonum parses");
	tap_ok(util_strtonum("101", 0, 100, &v, &es) == -1 &&
	    strcmp(es, "too large") == 0, "strtonum refuses too large");
	tap_ok(util_strtonum("12abc", 0, 100, &v, &es) == -1 &&
	    strcmp(es, "invalid") == 0, "strtonum refuses trailing junk");
	tap_ok(util_strtonum("", 0, 100, &v, &es) == -1, "strtonum refuses empty");
	{
		char scrub[16];
		log_scrub(scrub, sizeof(scrub), "a\nb\x1b[31mc");
		tap_is_str(scrub, "a?b?[31mc", "log_scrub replaces control bytes");
	}
}

static void
test_files(const char *dir)
{
	char path[UTIL_PATH_MAX], *text = NULL;
	struct stat st;
	size_t len;

	util_fmt(path, sizeof(path), "%s/a/b/c", dir);
	tap_is_int(util_mkdirs(path, 0755), 0, "mkdirs creates nested dirs");
	tap_ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "nested dir exists");
	util_fmt(path, sizeof(path), "%s/a/file", dir);
	tap_is_int(util_write_file_atomic(path, "one", 3, 0600), 0,
	    "atomic write");
	tap_is_int(util_write_file_atomic(path, "second", 6, 0640), 0,
	    "atomic overwrite");
	tap_ok(util_read_file(path, 100, &text, &len) == 0 && len == 6 &&
	    strcmp(text, "second") == 0, "reads back the new content");
	free(text);
	tap_ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640,
	    "mode applied");
	tap_ok(util_read_file(path, 3, &text, &len) == -1,
	    "read_file refuses a file over the limit");
	util_fmt(path, sizeof(path), "%s/a", dir);
	tap_is_int(util_rmtree(path), 0, "rmtree");
	tap_ok(stat(path, &st) == -1, "tree gone");
}

static void
test_conf(const char *dir)
{
	char path[UTIL_PATH_MAX], err[512], *text;
	static const char *const set[] = { "name", NULL };
	struct conf c, d;

	conf_defaults(&c, dir);
	tap_is_int(c.sync_interval, 30, "default sync_interval is 30 s");
	{
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		long want = cores > 0 ? 2 * cores : 2;

		tap_is_int(c.workers, want > 256 ? 256 : want,
		    "default workers is 2 x cores");
	}
	tap_is_int(conf_set(&c, "name", "alpha", err, sizeof(err)), 0, "set name");
	tap_is_int(conf_set(&c, "sync_interval", "0", err, sizeof(err)), -1,
	    "sync_interval 0 refused");
	tap_is_int(conf_set(&c, "listen", "127.0.0.1", err, sizeof(err)), -1,
	    "listen without port refused");
	tap_is_int(conf_set(&c, "listen", "127.0.0.2:99999", err, sizeof(err)),
	    -1, "listen port out of range refused");
	tap_is_int(conf_set(&c, "timezone", "Mars/Olympus", err, sizeof(err)),
	    -1, "unknown timezone refused");
	/* Paths that would resolve to a real file under the zoneinfo dir,
	 * so that only the name check can refuse them. */
	tap_is_int(conf_set(&c, "timezone", "../../../etc/passwd", err,
	    sizeof(err)), -1, "timezone path refused");
	tap_is_int(conf_set(&c, "timezone", "Europe/../UTC", err,
	    sizeof(err)), -1, "timezone with .. refused");
	tap_is_int(conf_set(&c, "nosuchkey", "1", err, sizeof(err)), -1,
	    "unknown key refused");

	text = conf_render(&c, set);
	tap_ok(text != NULL && strstr(text, "\nname = alpha\n") != NULL,
	    "rendered config has the set key active");
	tap_ok(text != NULL && strstr(text, "# sync_interval = 30\n") != NULL,
	    "other keys are written commented with defaults");
	util_fmt(path, sizeof(path), "%s/" CONF_FILE, dir);
	util_write_file_atomic(path, text, strlen(text), 0644);
	free(text);
	tap_is_int(conf_load(&d, dir, err, sizeof(err)), 0, "rendered config loads");
	tap_is_str(d.name, "alpha", "name round-trips");
	tap_ok(strstr(d.instance_dir, dir) == d.instance_dir,
	    "instance_dir is absolute under the node dir");

	util_write_file_atomic(path, "name = x\nbogus line\n", 20, 0644);
	tap_is_int(conf_load(&d, dir, err, sizeof(err)), -1, "bad line refused");
	tap_ok(strstr(err, ":2:") != NULL, "error names the line");
}

static void
test_time(void)
{
	char buf[TM_RFC3339_LEN];
	struct tm_zone_info zi;
	int64_t ms;

	tap_is_str(tm_rfc3339(buf, sizeof(buf), 1763785757123LL),
	    "2025-11-22T04:29:17.123Z", "UTC RFC 3339 with ms");
	{
		int64_t a = 0, b = 0;

		tap_ok(tm_parse_rfc3339("2026-11-22T09:15:00-05:00", &a) == 0 &&
		    tm_parse_rfc3339("2026-11-22T14:15:00Z", &b) == 0 &&
		    a == b && b == 1795356900000LL,
		    "-05:00 and Z name the same instant");
	}
	tap_is_int(tm_parse_rfc3339("2026-11-22T09:15:00", &ms), -1,
	    "a timestamp without offset is refused");
	tap_is_int(tm_parse_rfc3339("2026-02-30T00:00:00Z", &ms), -1,
	    "Feb 30 refused");
	tap_is_int(tm_parse_rfc3339("garbage", &ms), -1, "garbage refused");
	tap_ok(tm_zone_at("America/New_York", 1763785757123LL, &zi) == 0,
	    "zone lookup");
	tap_is_str(zi.offset, "-05:00", "New York is UTC-5 in November");
	tap_is_str(zi.date, "2025-11-21", "local date is the day before at 04:29Z");
	tap_ok(tm_zone_valid("UTC") && !tm_zone_valid("/usr/share/zoneinfo/UTC")
	    && !tm_zone_valid("../../../etc/passwd") &&
	    !tm_zone_valid("Europe/../UTC"), "zone names validated");
}

static void
test_keys(void)
{
	char pk[KEYS_PK_HEX], sk[KEYS_SK_HEX], sig[KEYS_SIG_HEX];
	char pk2[KEYS_PK_HEX], sk2[KEYS_SK_HEX], pw[KEYS_PWHASH_LEN];

	keys_generate(pk, sk);
	keys_generate(pk2, sk2);
	tap_is_int(keys_sign(sig, sk, "hello", 5), 0, "sign");
	tap_is_int(keys_verify(sig, pk, "hello", 5), 0, "verify");
	tap_is_int(keys_verify(sig, pk, "hellO", 5), -1, "tampered message fails");
	tap_is_int(keys_verify(sig, pk2, "hello", 5), -1, "other key fails");
	tap_is_int(keys_verify("zz", pk, "hello", 5), -1, "malformed signature fails");
	tap_is_int(keys_pw_hash(pw, "correct horse"), 0, "password hash");
	tap_ok(strncmp(pw, "$argon2id$", 10) == 0, "hash is Argon2id");
	tap_is_int(keys_pw_verify(pw, "correct horse"), 0, "right password");
	tap_is_int(keys_pw_verify(pw, "wrong horse"), -1, "wrong password");
}

int
main(void)
{
	char dir[] = "/tmp/meshsync-0001-XXXXXX";

	if (keys_init() == -1 || mkdtemp(dir) == NULL)
		return 1;
	test_strings();
	test_list();
	test_bg();
	test_files(dir);
	test_conf(dir);
	test_time();
	test_keys();
	util_rmtree(dir);
	return tap_done();
}
