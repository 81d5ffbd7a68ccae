/* 4001-fpath.c - path safety: validation rules, ignore globs and DB sidecars, symlink-proof open and mkdir (openat2 and fallback). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fpath.h"
#include "tap.h"
#include "util.h"

static char scratch[PATH_MAX];

/* fpath_check: what a relative synced path may and may not be. */
static void
test_check(void)
{
	static const struct {
		const char	*path;
		int		 ok;
		const char	*what;
	} cases[] = {
		{ "a", 1, "plain name" },
		{ "dir/sub/file.txt", 1, "nested" },
		{ "caf\xc3\xa9 na\xc3\xafve/\xe2\x82\xac.txt", 1, "UTF-8" },
		{ "with space/and more.txt", 1, "spaces" },
		{ ".hidden/..dots../...", 1, "dots that are not . or .." },
		{ "", 0, "empty" },
		{ "/etc/passwd", 0, "absolute" },
		{ "../x", 0, "leading .." },
		{ "a/../../x", 0, ".. inside" },
		{ "a/..", 0, "trailing .." },
		{ "./a", 0, "leading ." },
		{ "a/./b", 0, ". inside" },
		{ "a//b", 0, "empty component" },
		{ "a/", 0, "trailing slash" },
		{ "a\\..\\b", 0, "backslash" },
		{ "a\nb", 0, "newline" },
		{ "a\x7f", 0, "DEL" },
		{ "a\x01", 0, "control char" },
	};
	char err[128], big[FPATH_MAX + 8], comp[FPATH_NAME_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		tap_is_int(fpath_check(cases[i].path, err, sizeof(err)) == 0,
		    cases[i].ok, cases[i].what);
	tap_is_int(fpath_check(NULL, err, sizeof(err)), -1, "NULL refused");
	memset(comp, 'x', FPATH_NAME_MAX);
	comp[FPATH_NAME_MAX] = '\0';
	tap_is_int(fpath_check(comp, err, sizeof(err)), 0,
	    "255-byte component accepted");
	comp[FPATH_NAME_MAX] = 'x';
	comp[FPATH_NAME_MAX + 1] = '\0';
	tap_is_int(fpath_check(comp, err, sizeof(err)), -1,
	    "256-byte component refused");
	for (i = 0; i < FPATH_MAX; i++)
		big[i] = (i % 100 == 99) ? '/' : 'a';
	big[FPATH_MAX] = '\0';
	tap_is_int(fpath_check(big, err, sizeof(err)), 0,
	    "FPATH_MAX bytes accepted");
	big[FPATH_MAX] = 'a';
	big[FPATH_MAX + 1] = '\0';
	tap_is_int(fpath_check(big, err, sizeof(err)), -1,
	    "FPATH_MAX + 1 bytes refused");
	/* A NUL inside a JSON string would end the C string early: the
	 * JSON reader refuses such strings (t/unit/4002, "a\u0000b"). */
}

/* fpath_ignored: globs on basename and path, temp names, DB sidecars. */
static void
test_ignored(void)
{
	const char *pat = "*.swp *~ cache/* .git build";
	const char *dbs = "app.db data/other.sqlite";

	tap_ok(fpath_ignored("notes.swp", pat, dbs), "basename glob");
	tap_ok(fpath_ignored("dir/.notes.txt.swp", pat, dbs),
	    "basename glob matches dotfiles in subdirs");
	tap_ok(fpath_ignored("a/b/file~", pat, dbs), "suffix glob");
	tap_ok(fpath_ignored("cache/x", pat, dbs), "path glob");
	tap_ok(fpath_ignored("cache/x/deeper/y", pat, dbs),
	    "below an ignored path");
	tap_ok(!fpath_ignored("sub/cache/x", pat, dbs),
	    "path glob is anchored at the root");
	tap_ok(fpath_ignored(".git/config", pat, dbs), "ignored directory");
	tap_ok(fpath_ignored("src/build/out.o", pat, dbs),
	    "ignored dir name anywhere");
	tap_ok(!fpath_ignored("buildings.txt", pat, dbs), "no partial match");
	tap_ok(fpath_ignored(".meshsync-tmp-0123abcd", NULL, NULL),
	    "meshsync temp name always ignored");
	tap_ok(fpath_ignored("d/.meshsync-tmp-x/y", NULL, NULL),
	    "temp name as a directory component");
	tap_ok(fpath_ignored("app.db", pat, dbs), "tracked db");
	tap_ok(fpath_ignored("app.db-wal", pat, dbs), "db -wal");
	tap_ok(fpath_ignored("app.db-shm", pat, dbs), "db -shm");
	tap_ok(fpath_ignored("app.db-journal", pat, dbs), "db -journal");
	tap_ok(fpath_ignored("data/other.sqlite-wal", pat, dbs),
	    "nested db sidecar");
	tap_ok(!fpath_ignored("app.db.bak", pat, dbs), "other name kept");
	tap_ok(!fpath_ignored("x/app.db", pat, dbs), "same name elsewhere");
	tap_ok(fpath_ignored("app.db", NULL, "./app.db"), "./ in db list");
	tap_ok(!fpath_ignored("report.pdf", pat, dbs), "normal file synced");
	tap_ok(!fpath_ignored("report.pdf", NULL, NULL), "NULL lists");
}

static int
exists_at(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Safe open and mkdir, with openat2 (on) or the per-component fallback. */
static void
test_open(int use2)
{
	char root[PATH_MAX], out[PATH_MAX], p[PATH_MAX + 64];
	char base[FPATH_NAME_MAX + 1];
	const char *mode = use2 ? "openat2" : "fallback";
	int rfd, fd;

	fpath_use_openat2(use2);
	util_fmt(root, sizeof(root), "%s/root-%d", scratch, use2);
	util_fmt(out, sizeof(out), "%s/outside-%d", scratch, use2);
	util_fmt(p, sizeof(p), "%s/d/e", root);
	util_mkdirs(p, 0755);
	util_mkdirs(out, 0755);
	util_fmt(p, sizeof(p), "%s/d/file", root);
	util_write_file_atomic(p, "hi", 2, 0644);
	util_fmt(p, sizeof(p), "%s/esc", root);
	if (symlink(out, p) == -1)
		tap_diag("symlink: %s", strerror(errno));
	util_fmt(p, sizeof(p), "%s/d/lnk", root);
	if (symlink("file", p) == -1)
		tap_diag("symlink: %s", strerror(errno));
	util_fmt(p, sizeof(p), "%s/secret", out);
	util_write_file_atomic(p, "s", 1, 0644);
	rfd = open(root, O_RDONLY | O_DIRECTORY);

	fd = fpath_open(rfd, "d/file", O_RDONLY, 0);
	tap_ok(fd >= 0, "%s: opens a normal file", mode);
	if (fd >= 0)
		close(fd);
	errno = 0;
	fd = fpath_open(rfd, "esc/secret", O_RDONLY, 0);
	tap_ok(fd == -1 && errno == ELOOP,
	    "%s: symlinked directory on the way refused (ELOOP)", mode);
	errno = 0;
	fd = fpath_open(rfd, "d/lnk", O_RDONLY, 0);
	tap_ok(fd == -1 && errno == ELOOP,
	    "%s: symlink as last component refused", mode);
	errno = 0;
	fd = fpath_open(rfd, "esc/new", O_WRONLY | O_CREAT | O_EXCL, 0644);
	tap_ok(fd == -1, "%s: create through a symlink refused", mode);
	util_fmt(p, sizeof(p), "%s/new", out);
	tap_ok(!exists_at(p), "%s: nothing created outside", mode);
	errno = 0;
	fd = fpath_open(rfd, "../x", O_RDONLY, 0);
	tap_ok(fd == -1 && errno == EINVAL, "%s: .. refused", mode);
	fd = fpath_open(rfd, "d/new", O_WRONLY | O_CREAT | O_EXCL, 0640);
	tap_ok(fd >= 0, "%s: creates inside", mode);
	if (fd >= 0)
		close(fd);

	tap_ok(fpath_mkdirs(rfd, "m/n/o", 0755) == 0, "%s: mkdirs nested",
	    mode);
	util_fmt(p, sizeof(p), "%s/m/n/o", root);
	tap_ok(exists_at(p), "%s: nested dirs exist", mode);
	tap_is_int(fpath_mkdirs(rfd, "m/n/o", 0755), 0, "mkdirs is idempotent");
	errno = 0;
	tap_ok(fpath_mkdirs(rfd, "esc/made/deeper", 0755) == -1 &&
	    errno == ELOOP, "%s: mkdirs through a symlink refused", mode);
	util_fmt(p, sizeof(p), "%s/made", out);
	tap_ok(!exists_at(p), "%s: no directory made outside", mode);
	tap_ok(fpath_mkdirs(rfd, "d/file/x", 0755) == -1 && errno == ENOTDIR,
	    "%s: mkdirs through a file says ENOTDIR", mode);

	fd = fpath_open_parent(rfd, "m/n/o/leaf.txt", 0, base, sizeof(base));
	tap_ok(fd >= 0 && strcmp(base, "leaf.txt") == 0,
	    "%s: open_parent gives the dir and the base name", mode);
	if (fd >= 0)
		close(fd);
	fd = fpath_open_parent(rfd, "p/q/leaf", 1, base, sizeof(base));
	util_fmt(p, sizeof(p), "%s/p/q", root);
	tap_ok(fd >= 0 && exists_at(p), "%s: open_parent creates", mode);
	if (fd >= 0)
		close(fd);
	errno = 0;
	fd = fpath_open_parent(rfd, "esc/leaf", 1, base, sizeof(base));
	tap_ok(fd == -1 && errno == ELOOP,
	    "%s: open_parent refuses a symlinked parent", mode);

	{
		struct stat sb;
		util_fmt(p, sizeof(p), "%s/d/fifo", root);
		if (mkfifo(p, 0600) == -1)
			tap_diag("mkfifo: %s", strerror(errno));
		fd = fpath_open_regular(rfd, "d/file", &sb);
		tap_ok(fd >= 0 && sb.st_size == 2, "%s: open_regular opens a "
		    "regular file", mode);
		if (fd >= 0)
			close(fd);
		/* Would block forever if it were opened for reading. */
		errno = 0;
		tap_ok(fpath_open_regular(rfd, "d/fifo", &sb) == -1 &&
		    errno == EINVAL, "%s: open_regular refuses a fifo without "
		    "opening it", mode);
		errno = 0;
		tap_ok(fpath_open_regular(rfd, "d/e", &sb) == -1 &&
		    errno == EINVAL, "%s: open_regular refuses a directory",
		    mode);
		tap_ok(fpath_open_regular(rfd, "d/lnk", &sb) == -1 &&
		    fpath_open_regular(rfd, "esc/secret", &sb) == -1,
		    "%s: open_regular refuses symlinks", mode);
	}
	close(rfd);
	fpath_use_openat2(1);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	util_fmt(scratch, sizeof(scratch), "%s/t4001-XXXXXX", tmp ? tmp :
	    "/tmp");
	if (mkdtemp(scratch) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_check();
	test_ignored();
	test_open(1);
	test_open(0);
	if (getenv("MESHSYNC_KEEP") == NULL)
		util_rmtree(scratch);
	return tap_done();
}
