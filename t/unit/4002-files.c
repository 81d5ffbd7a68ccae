/* 4002-files.c - file sync engine end to end on a real filesystem: two or three nodes in one process, each a state DB + instance dir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>
#include <sqlite3.h>

#include "files.h"
#include "fpath.h"
#include "log.h"
#include "sbuf.h"
#include "tap.h"
#include "util.h"

#define IGNORE	"*.swp *~ cache"
#define DBS	"app.db data/other.db"

struct node {
	char		 id[32];
	char		 root[PATH_MAX];
	sqlite3		*db;
	struct files_cfg cfg;
};

/* The test fetcher: copies from the source node's folder (through the
 * safe open, like the download route will), optionally corrupting the
 * bytes or running a hook halfway. */
struct fetch_arg {
	struct node	*src;
	int		 corrupt;
	int		 calls;		/* single fetches */
	int		 bundle;	/* 0 none, 1 works, 2 refuses odd
					   files, 3 fails as a whole */
	int		 many_calls;
	void		(*midway)(void *);
	void		*midway_arg;
};

static char scratch[PATH_MAX];

static void
die(const char *what)
{
	fprintf(stderr, "fatal: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
node_init(struct node *n, const char *id)
{
	char path[PATH_MAX + 32], *msg = NULL;

	memset(n, 0, sizeof(*n));
	util_fmt(n->id, sizeof(n->id), "%s", id);
	util_fmt(n->root, sizeof(n->root), "%s/%s/instance", scratch, id);
	if (util_mkdirs(n->root, 0755) == -1)
		die("mkdirs");
	util_fmt(path, sizeof(path), "%s/%s/meshsync.db", scratch, id);
	if (sqlite3_open(path, &n->db) != SQLITE_OK ||
	    sqlite3_exec(n->db, "PRAGMA journal_mode=WAL", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(n->db, files_schema, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "schema: %s\n", msg ? msg : "?");
		exit(2);
	}
	sqlite3_busy_timeout(n->db, FILES_BUSY_MS);
	n->cfg.root = n->root;
	n->cfg.self = n->id;
	n->cfg.ignore = IGNORE;
	n->cfg.databases = DBS;
	n->cfg.max_conflicts = 0;
}

static void
node_close(struct node *n)
{
	sqlite3_close(n->db);
}

static int
test_fetch(void *arg, const char *path, const char *hash, int64_t size,
    struct files_sink *out, char *err, size_t errsz)
{
	struct fetch_arg *fa = arg;
	unsigned char *buf = NULL;
	int rfd = -1, in = -1, ret = -1, zero;
	ssize_t r, i;
	off_t total = 0;

	fa->calls++;
	if ((rfd = open(fa->src->root, O_RDONLY | O_DIRECTORY)) == -1 ||
	    (in = fpath_open(rfd, path, O_RDONLY, 0)) == -1 ||
	    (buf = malloc(65536)) == NULL) {
		util_fmt(err, errsz, "open: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		if ((r = read(in, buf, 65536)) < 0)
			goto fail;
		if (r == 0)
			break;
		if (fa->corrupt && total == 0)
			buf[0] ^= 0x5a;
		/* Keep sparse files sparse: the 1 GiB test stays quick. */
		for (i = 0, zero = 1; i < r && zero; i++)
			zero = buf[i] == 0;
		if (zero) {
			if (files_sink_hole(out, r) == -1)
				goto fail;
		} else if (files_sink_write(out, buf, (size_t)r) == -1)
			goto fail;
		total += r;
		if (fa->midway != NULL && total >= size / 2) {
			fa->midway(fa->midway_arg);
			fa->midway = NULL;
		}
	}
	ret = 0;
fail:
	if (ret == -1 && err[0] == '\0')
		util_fmt(err, errsz, "copy: %s", strerror(errno));
	free(buf);
	if (in != -1)
		close(in);
	if (rfd != -1)
		close(rfd);
	return ret;
}

/* The bundle side of the test fetcher (fa->bundle says how it behaves):
 * an answer in the bundle format, from the source node's folder.  It runs
 * on the engine's helper thread: it only counts, reads and answers. */
static int
test_fetch_many(void *arg, size_t n, const char *const *paths, char **body,
    size_t *len, char *err, size_t errsz)
{
	struct fetch_arg *fa = arg;
	struct sbuf out = { 0 };
	char p[PATH_MAX * 2], *data;
	size_t i, dlen;

	fa->many_calls++;
	if (fa->bundle == 3) {
		util_fmt(err, errsz, "no bundle route");
		return -1;
	}
	for (i = 0; i < n; i++) {
		util_fmt(p, sizeof(p), "%s/%s", fa->src->root, paths[i]);
		if ((fa->bundle == 2 && i % 2 == 1) ||
		    util_read_file(p, FILES_SMALL_MAX, &data, &dlen) == -1) {
			sbuf_add(&out, "X refused\n");
			continue;
		}
		sbuf_addf(&out, "F %zu\n", dlen);
		sbuf_addn(&out, data, dlen);
		free(data);
	}
	*body = out.p;
	*len = out.len;
	return out.oom ? -1 : 0;
}

/*
 * One-way sync from -> to: scan `from`, then manifest batches from the
 * cursor `to` keeps for `from`, pulled until "more" is false (or an error).
 * Returns the last rc; stats are added into *st when not NULL.
 */
static enum files_rc
sync_one(struct node *from, struct node *to, struct fetch_arg *fa,
    int limit, struct files_sync_stats *st)
{
	struct fetch_arg local = { .src = from };
	struct files_fetcher f;
	json_object *m = NULL, *more;
	char err[512];
	int64_t since;
	enum files_rc rc;

	if (fa == NULL)
		fa = &local;
	fa->src = from;
	memset(&f, 0, sizeof(f));
	f.fetch = test_fetch;
	f.fetch_many = fa->bundle ? test_fetch_many : NULL;
	f.arg = fa;
	if ((rc = files_scan(from->db, &from->cfg, NULL, err,
	    sizeof(err))) != FILES_OK) {
		tap_diag("scan %s: %s", from->id, err);
		return rc;
	}
	for (;;) {
		if (files_cursor(to->db, from->id, &since, err,
		    sizeof(err)) != FILES_OK ||
		    files_manifest(from->db, since, limit, &m, err,
		    sizeof(err)) != FILES_OK) {
			tap_diag("manifest: %s", err);
			return FILES_EINTERNAL;
		}
		rc = files_pull(to->db, &to->cfg, from->id, m, &f, st, err,
		    sizeof(err));
		if (rc != FILES_OK) {
			tap_diag("pull %s -> %s: %s: %s", from->id, to->id,
			    files_rc_str(rc), err);
			json_object_put(m);
			return rc;
		}
		json_object_object_get_ex(m, "more", &more);
		if (!json_object_get_boolean(more)) {
			json_object_put(m);
			return FILES_OK;
		}
		json_object_put(m);
	}
}

/* Sync both ways until nothing changes (at most a few rounds). */
static int
sync_both(struct node *a, struct node *b)
{
	struct files_sync_stats st;
	int round;

	for (round = 0; round < 4; round++) {
		memset(&st, 0, sizeof(st));
		if (sync_one(a, b, NULL, 0, &st) != FILES_OK ||
		    sync_one(b, a, NULL, 0, &st) != FILES_OK)
			return -1;
		if (st.received + st.removed + st.dirs + st.adopted +
		    st.conflicts == 0)
			return 0;
	}
	return 0;
}

static void
put(struct node *n, const char *rel, const void *data, size_t len,
    mode_t mode)
{
	char path[PATH_MAX * 2], dir[PATH_MAX * 2], *slash;
	int fd;

	util_fmt(path, sizeof(path), "%s/%s", n->root, rel);
	util_strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		util_mkdirs(dir, 0755);
	}
	/* In place, like an application would (not atomically). */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)) == -1)
		die(path);
	if (write(fd, data, len) != (ssize_t)len)
		die("write");
	fchmod(fd, mode);
	close(fd);
}

static void
puts_(struct node *n, const char *rel, const char *s)
{
	put(n, rel, s, strlen(s), 0644);
}

/* Content of a file into buf ("" and -1 when missing). */
static int
get(struct node *n, const char *rel, char *buf, size_t bufsz)
{
	char path[PATH_MAX * 2];
	ssize_t r;
	int fd;

	buf[0] = '\0';
	util_fmt(path, sizeof(path), "%s/%s", n->root, rel);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	r = read(fd, buf, bufsz - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return 0;
}

static int
has(struct node *n, const char *rel)
{
	char path[PATH_MAX * 2];
	struct stat sb;

	util_fmt(path, sizeof(path), "%s/%s", n->root, rel);
	return lstat(path, &sb) == 0;
}

static int
mode_of(struct node *n, const char *rel)
{
	char path[PATH_MAX * 2];
	struct stat sb;

	util_fmt(path, sizeof(path), "%s/%s", n->root, rel);
	return lstat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static void
rm(struct node *n, const char *rel)
{
	char path[PATH_MAX * 2];

	util_fmt(path, sizeof(path), "%s/%s", n->root, rel);
	if (remove(path) == -1)
		die(path);
}

static void
mv(struct node *n, const char *from, const char *to)
{
	char a[PATH_MAX * 2], b[PATH_MAX * 2];

	util_fmt(a, sizeof(a), "%s/%s", n->root, from);
	util_fmt(b, sizeof(b), "%s/%s", n->root, to);
	if (rename(a, b) == -1)
		die("rename");
}

/* ---- a digest of a whole tree: sorted "path kind mode hash" lines ---- */

struct lines {
	char	**v;
	size_t	 n, cap;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
tree_walk(const char *root, const char *rel, struct lines *l, int *tmps)
{
	char path[PATH_MAX * 2], sub[PATH_MAX], line[PATH_MAX + 128];
	char hex[FILES_HASH_HEX + 1];
	struct dirent *de;
	struct stat sb;
	int64_t size;
	DIR *d;
	int fd;

	util_fmt(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		util_fmt(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
		    de->d_name);
		util_fmt(path, sizeof(path), "%s/%s", root, sub);
		if (lstat(path, &sb) == -1)
			continue;
		if (strncmp(de->d_name, FPATH_TMP_PREFIX,
		    strlen(FPATH_TMP_PREFIX)) == 0)
			(*tmps)++;
		hex[0] = '\0';
		if (S_ISREG(sb.st_mode) && (fd = open(path, O_RDONLY)) != -1) {
			files_hash_fd(fd, hex, sizeof(hex), &size);
			close(fd);
		}
		util_fmt(line, sizeof(line), "%s %c %o %s", sub,
		    S_ISDIR(sb.st_mode) ? 'd' : S_ISREG(sb.st_mode) ? 'f' : 'o',
		    (unsigned)(sb.st_mode & 0777), hex);
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->v = realloc(l->v, l->cap * sizeof(*l->v));
		}
		l->v[l->n++] = strdup(line);
		if (S_ISDIR(sb.st_mode))
			tree_walk(root, sub, l, tmps);
	}
	closedir(d);
}

/* Digest of n's tree (every entry, ignored ones included), and the
 * number of meshsync temp files found in *tmps. */
static void
tree(struct node *n, char out[65], int *tmps)
{
	crypto_generichash_state hs;
	unsigned char h[32];
	struct lines l = { 0 };
	int t = 0;
	size_t i;

	tree_walk(n->root, "", &l, &t);
	if (l.n > 0)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	crypto_generichash_init(&hs, NULL, 0, sizeof(h));
	for (i = 0; i < l.n; i++) {
		crypto_generichash_update(&hs, (unsigned char *)l.v[i],
		    strlen(l.v[i]) + 1);
		if (getenv("TREE_DEBUG"))
			tap_diag("%s: %s", n->id, l.v[i]);
		free(l.v[i]);
	}
	free(l.v);
	crypto_generichash_final(&hs, h, sizeof(h));
	util_hex(out, 65, h, sizeof(h));
	if (tmps != NULL)
		*tmps = t;
}

static int
same_tree(struct node *a, struct node *b)
{
	char da[65], db[65];
	int ta, tb;

	tree(a, da, &ta);
	tree(b, db, &tb);
	return strcmp(da, db) == 0 && ta == 0 && tb == 0;
}

static long long
q(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Count of "*.sync-conflict-*" entries in n's folder whose name starts
 * with prefix (in the root). */
static int
conflict_copies(struct node *n, const char *prefix, char *name,
    size_t namesz)
{
	struct dirent *de;
	DIR *d;
	int c = 0;

	if ((d = opendir(n->root)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strstr(de->d_name, ".sync-conflict-") != NULL) {
			if (name != NULL)
				util_strlcpy(name, de->d_name, namesz);
			c++;
		}
	closedir(d);
	return c;
}

/* Make sure the next local version gets a later wall clock ms. */
static void
tick(void)
{
	struct timespec ts = { 0, 3 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* Create, modify, chmod, delete, rename, nested and empty dirs, binary,
 * unicode and spaces; A -> B; ignored names and DB sidecars never sent. */
static void
test_basic(void)
{
	struct node a, b;
	struct files_sync_stats st;
	unsigned char bin[4096];
	char buf[256];
	size_t i;

	node_init(&a, "nodeA-basic");
	node_init(&b, "nodeB-basic");
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + (i >> 8));
	puts_(&a, "hello.txt", "hello\n");
	put(&a, "bin/blob.bin", bin, sizeof(bin), 0600);
	puts_(&a, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e na\xc3\xafve.txt",
	    "unicode\n");
	puts_(&a, "with space/a file name.txt", "spaces\n");
	put(&a, "tools/run.sh", "#!/bin/sh\necho hi\n", 18, 0750);
	puts_(&a, "deep/a/b/c/d/e/leaf.txt", "deep\n");
	util_fmt(buf, sizeof(buf), "%s/empty/inner", a.root);
	util_mkdirs(buf, 0700);
	puts_(&a, "empty-file", "");
	/* never synced: */
	puts_(&a, "app.db", "SQLite format 3");
	puts_(&a, "app.db-wal", "wal");
	puts_(&a, "app.db-journal", "j");
	puts_(&a, "data/other.db-shm", "shm");
	puts_(&a, "notes.txt.swp", "swap");
	puts_(&a, "cache/big.tmp", "cache");
	puts_(&a, ".meshsync-tmp-deadbeef", "tmp");
	util_fmt(buf, sizeof(buf), "%s/link-out", a.root);
	if (symlink("/etc", buf) == -1)
		die("symlink");

	memset(&st, 0, sizeof(st));
	tap_is_int(sync_one(&a, &b, NULL, 0, &st), FILES_OK, "basic: first sync");
	tap_is_int(q(a.db, "SELECT count(*) FROM files_index WHERE path IN "
	    "('app.db','app.db-wal','app.db-journal','data/other.db-shm',"
	    "'notes.txt.swp','cache','cache/big.tmp','.meshsync-tmp-deadbeef',"
	    "'link-out')"), 0, "ignored, DB sidecars, temp, symlink not indexed");
	tap_ok(!has(&b, "app.db") && !has(&b, "app.db-wal") &&
	    !has(&b, "notes.txt.swp") && !has(&b, "cache") &&
	    !has(&b, "link-out") && !has(&b, "data/other.db-shm"),
	    "none of them reached B");
	get(&b, "hello.txt", buf, sizeof(buf));
	tap_is_str(buf, "hello\n", "text file arrived");
	get(&b, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e na\xc3\xafve.txt",
	    buf, sizeof(buf));
	tap_is_str(buf, "unicode\n", "unicode name arrived");
	get(&b, "with space/a file name.txt", buf, sizeof(buf));
	tap_is_str(buf, "spaces\n", "name with spaces arrived");
	tap_is_int(mode_of(&b, "tools/run.sh"), 0750, "exec mode kept");
	tap_is_int(mode_of(&b, "bin/blob.bin"), 0600, "0600 kept");
	tap_is_int(mode_of(&b, "empty/inner"), 0700, "empty dir with its mode");
	tap_ok(has(&b, "empty-file"), "empty file arrived");
	tap_ok(has(&b, "deep/a/b/c/d/e/leaf.txt"), "nested file arrived");
	memset(&st, 0, sizeof(st));
	tap_is_int(sync_one(&a, &b, NULL, 0, &st), FILES_OK, "idle sync");
	tap_is_int(st.received + st.removed + st.dirs + st.conflicts +
	    st.adopted, 0, "an idle sync changes nothing");
	/* A's ignored files stay on A only: compare after removing them
	 * (the stale temp is young, so the scan left it alone). */
	tap_ok(has(&a, ".meshsync-tmp-deadbeef"), "young temp file kept");
	rm(&a, "app.db");
	rm(&a, "app.db-wal");
	rm(&a, "app.db-journal");
	rm(&a, "data/other.db-shm");
	rm(&a, "notes.txt.swp");
	rm(&a, "cache/big.tmp");
	rm(&a, "cache");
	rm(&a, ".meshsync-tmp-deadbeef");
	rm(&a, "link-out");
	tap_ok(same_tree(&a, &b), "trees identical (hashes, modes, dirs)");

	/* modify, chmod, delete, rename, dir rename, empty dir removal */
	tick();
	puts_(&a, "hello.txt", "hello, world\n");
	util_fmt(buf, sizeof(buf), "%s/bin/blob.bin", a.root);
	chmod(buf, 0644);
	rm(&a, "empty-file");
	mv(&a, "with space/a file name.txt", "with space/renamed.txt");
	mv(&a, "deep/a", "deep/z");
	rm(&a, "empty/inner");
	memset(&st, 0, sizeof(st));
	tap_is_int(sync_one(&a, &b, NULL, 0, &st), FILES_OK, "second sync");
	get(&b, "hello.txt", buf, sizeof(buf));
	tap_is_str(buf, "hello, world\n", "modification arrived");
	tap_is_int(mode_of(&b, "bin/blob.bin"), 0644, "chmod arrived");
	tap_ok(!has(&b, "empty-file"), "delete arrived");
	tap_ok(has(&b, "with space/renamed.txt") &&
	    !has(&b, "with space/a file name.txt"),
	    "rename: new name only");
	tap_ok(has(&b, "deep/z/b/c/d/e/leaf.txt") && !has(&b, "deep/a"),
	    "directory rename: new tree only");
	tap_ok(has(&b, "empty") && !has(&b, "empty/inner"),
	    "removed empty dir gone");
	tap_is_int(st.conflicts, 0, "no conflicts in one-way edits");
	tap_ok(same_tree(&a, &b), "trees identical after edits");

	/* a file turned into a directory and back */
	tick();
	rm(&a, "hello.txt");
	puts_(&a, "hello.txt/inside", "now a dir\n");
	tap_is_int(sync_one(&a, &b, NULL, 0, NULL), FILES_OK, "kind change");
	tap_ok(same_tree(&a, &b), "file -> dir followed");
	node_close(&a);
	node_close(&b);
}

/* Relay A -> B -> C without A knowing C; and back C -> B -> A; no echo. */
static void
test_relay(void)
{
	struct node a, b, c;
	struct files_sync_stats st;
	char buf[64];

	node_init(&a, "nodeA-relay");
	node_init(&b, "nodeB-relay");
	node_init(&c, "nodeC-relay");
	puts_(&a, "r/one.txt", "one\n");
	puts_(&a, "two.txt", "two\n");
	sync_one(&a, &b, NULL, 0, NULL);
	tap_is_int(sync_one(&b, &c, NULL, 1, NULL), FILES_OK,
	    "relay B -> C in batches of one");
	tap_ok(same_tree(&a, &c), "C has A's files via B");
	tap_is_int(q(c.db, "SELECT count(*) FROM files_index WHERE "
	    "origin = 'nodeA-relay' AND path = 'two.txt'"), 1,
	    "relayed version keeps its origin");
	tick();
	puts_(&c, "two.txt", "two from C\n");
	rm(&c, "r/one.txt");
	sync_one(&c, &b, NULL, 0, NULL);
	sync_one(&b, &a, NULL, 0, NULL);
	get(&a, "two.txt", buf, sizeof(buf));
	tap_is_str(buf, "two from C\n", "C's edit reached A via B");
	tap_ok(!has(&a, "r/one.txt"), "C's delete reached A via B");
	memset(&st, 0, sizeof(st));
	sync_one(&a, &b, NULL, 0, &st);
	sync_one(&b, &c, NULL, 0, &st);
	tap_is_int(st.received + st.removed + st.conflicts, 0,
	    "no echo back to the origin");
	tap_ok(same_tree(&a, &b) && same_tree(&b, &c), "all three identical");
	node_close(&a);
	node_close(&b);
	node_close(&c);
}

/* Both edit one file: one winner everywhere plus exactly one conflict
 * copy (with the loser's content); editing twice between pulls is not a
 * conflict; a sequential delete is not a conflict either. */
static void
test_conflict(void)
{
	struct node a, b;
	char buf[256], name[256], name2[256], path[PATH_MAX];
	json_object *cj = NULL, *arr;
	char err[256];

	node_init(&a, "aaaa1111-conflict");
	node_init(&b, "bbbb2222-conflict");
	puts_(&a, "report.pdf", "v0\n");
	sync_both(&a, &b);
	tick();
	puts_(&a, "report.pdf", "A's edit\n");
	files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
	tick();
	puts_(&b, "report.pdf", "B's edit\n");
	files_scan(b.db, &b.cfg, NULL, err, sizeof(err));
	tap_is_int(sync_both(&a, &b), 0, "conflict: sync both ways");
	get(&a, "report.pdf", buf, sizeof(buf));
	tap_is_str(buf, "B's edit\n", "newer edit wins on A");
	get(&b, "report.pdf", buf, sizeof(buf));
	tap_is_str(buf, "B's edit\n", "newer edit wins on B");
	tap_is_int(conflict_copies(&a, "report", name, sizeof(name)), 1,
	    "exactly one conflict copy on A");
	tap_is_int(conflict_copies(&b, "report", name2, sizeof(name2)), 1,
	    "exactly one conflict copy on B");
	tap_is_str(name2, name, "same copy name on both");
	tap_ok(strncmp(name, "report.sync-conflict-", 21) == 0 &&
	    strstr(name, "-aaaa1111.pdf") != NULL && strlen(name) ==
	    strlen("report.sync-conflict-20261122-041500-aaaa1111.pdf"),
	    "copy name NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE.EXT");
	util_fmt(path, sizeof(path), "%s", name);
	get(&b, path, buf, sizeof(buf));
	tap_is_str(buf, "A's edit\n", "the copy holds the loser's content");
	tap_ok(files_conflicts(a.db, 10, 0, &cj, err, sizeof(err)) ==
	    FILES_OK && json_object_object_get_ex(cj, "conflicts", &arr) &&
	    json_object_array_length(arr) == 1, "conflict recorded on A");
	if (cj != NULL) {
		json_object *c0 = json_object_array_get_idx(arr, 0), *v;

		tap_ok(c0 != NULL && json_object_object_get_ex(c0, "copy", &v) &&
		    strcmp(json_object_get_string(v), name) == 0 &&
		    json_object_object_get_ex(c0, "loser_origin", &v) &&
		    strcmp(json_object_get_string(v), a.id) == 0,
		    "record names the copy and the losing origin");
	}
	json_object_put(cj);
	tap_ok(same_tree(&a, &b), "trees identical after the conflict");

	/* Several edits on A between two pulls: sequential, no copy. */
	tick();
	puts_(&a, "report.pdf", "A1\n");
	files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
	tick();
	puts_(&a, "report.pdf", "A2\n");
	files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
	tick();
	puts_(&a, "report.pdf", "A3\n");
	sync_both(&a, &b);
	get(&b, "report.pdf", buf, sizeof(buf));
	tap_is_str(buf, "A3\n", "multi-edit arrives");
	tap_is_int(conflict_copies(&b, "report", NULL, 0), 1,
	    "editing twice between pulls makes no new copy");

	/* Sequential delete after sync: deleted everywhere. */
	tick();
	rm(&b, "report.pdf");
	sync_both(&a, &b);
	tap_ok(!has(&a, "report.pdf") && !has(&b, "report.pdf"),
	    "sequential delete removes the file everywhere");
	tap_ok(same_tree(&a, &b), "trees identical after the delete");
	node_close(&a);
	node_close(&b);
}

/* Modify vs delete, both orders of clocks and of syncing: the modified
 * file survives everywhere. */
static void
test_modify_delete(void)
{
	static const struct {
		int	 delete_last;	/* the delete has the newer clock */
		int	 deleter_pulls_first;
	} cases[] = { { 1, 0 }, { 1, 1 }, { 0, 0 }, { 0, 1 } };
	char id1[32], id2[32], buf[64], err[256];
	struct node a, b;	/* a deletes, b modifies */
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		util_fmt(id1, sizeof(id1), "nodeA-md%zu", i);
		util_fmt(id2, sizeof(id2), "nodeB-md%zu", i);
		node_init(&a, id1);
		node_init(&b, id2);
		puts_(&a, "doc.txt", "original\n");
		sync_both(&a, &b);
		tick();
		if (cases[i].delete_last) {
			puts_(&b, "doc.txt", "modified\n");
			files_scan(b.db, &b.cfg, NULL, err, sizeof(err));
			tick();
			rm(&a, "doc.txt");
			files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
		} else {
			rm(&a, "doc.txt");
			files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
			tick();
			puts_(&b, "doc.txt", "modified\n");
			files_scan(b.db, &b.cfg, NULL, err, sizeof(err));
		}
		if (cases[i].deleter_pulls_first)
			sync_both(&b, &a);
		else
			sync_both(&a, &b);
		get(&a, "doc.txt", buf, sizeof(buf));
		tap_is_str(buf, "modified\n", cases[i].delete_last ?
		    "delete newer: modification survives on the deleter" :
		    "modify newer: modification reaches the deleter");
		get(&b, "doc.txt", buf, sizeof(buf));
		tap_is_str(buf, "modified\n", "and stays on the modifier");
		tap_ok(same_tree(&a, &b), "trees identical (case %zu)", i);
		node_close(&a);
		node_close(&b);
	}
}

/* A manifest with one hostile entry is refused whole: nothing written,
 * nothing indexed, cursor unchanged; a symlink out of B's folder is
 * never written through. */
static void
test_hostile(int use2)
{
	static const char *const bad[] = {
		"\"../x\"", "\"/etc/passwd\"", "\"a/../../x\"",
		"\"a\\u0000b\"", "\"a\\\\..\\\\x\"", "\"a//b\"", "\"\"",
		"\".meshsync-tmp-123\"", "\"d/.meshsync-tmp-1/x\"", "42",
	};
	struct node a, b;
	struct files_fetcher f;
	struct fetch_arg fa;
	struct files_sync_stats st;
	json_object *m;
	char js[1024], err[256], out[PATH_MAX], lnk[PATH_MAX * 2], d1[65];
	char d2[65];
	size_t i;
	int64_t cur;
	enum files_rc rc;

	util_fmt(js, sizeof(js), "nodeA-hostile%d", use2);
	node_init(&a, js);
	util_fmt(js, sizeof(js), "nodeB-hostile%d", use2);
	node_init(&b, js);
	fpath_use_openat2(use2);
	tap_diag("hostile paths, %s", use2 ? "openat2" : "O_NOFOLLOW walk");
	memset(&fa, 0, sizeof(fa));
	fa.src = &a;
	memset(&f, 0, sizeof(f));
	f.fetch = test_fetch;
	f.arg = &fa;
	util_fmt(out, sizeof(out), "%s/outside%d", scratch, use2);
	util_mkdirs(out, 0755);
	puts_(&a, "good.txt", "good\n");
	tree(&b, d1, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		util_fmt(js, sizeof(js), "{\"entries\": ["
		    "{\"path\": \"good.txt\", \"kind\": \"file\", \"size\": 5,"
		    " \"mode\": 420, \"hash\": \"%064d\", \"hlc\": 1,"
		    " \"origin\": \"nodeA-hostileX\", \"prev_hlc\": 0,"
		    " \"prev_origin\": \"\", \"deleted\": false, \"lseq\": 1},"
		    "{\"path\": %s, \"kind\": \"file\", \"size\": 1,"
		    " \"mode\": 420, \"hash\": \"%064d\", \"hlc\": 2,"
		    " \"origin\": \"nodeA-hostileX\", \"prev_hlc\": 0,"
		    " \"prev_origin\": \"\", \"deleted\": false, \"lseq\": 2}],"
		    " \"next\": 2, \"more\": false}", 0, bad[i], 0);
		m = json_tokener_parse(js);
		rc = files_pull(b.db, &b.cfg, a.id, m, &f, NULL, err,
		    sizeof(err));
		tap_is_int(rc, FILES_EINPUT, "hostile path refused");
		tap_diag("  reason: %s", err);
		json_object_put(m);
	}
	/* Wrong types and values elsewhere in an entry. */
	{
		static const char *const badent[] = {
			"\"kind\": \"socket\"", "\"size\": -1", "\"mode\": \"x\"",
			"\"hash\": \"../../etc\"", "\"hlc\": 0",
			"\"origin\": \"a/b\"", "\"deleted\": \"no\"",
			"\"lseq\": 99",
		};
		for (i = 0; i < sizeof(badent) / sizeof(badent[0]); i++) {
			util_fmt(js, sizeof(js), "{\"entries\": [{\"path\": "
			    "\"x\", \"kind\": \"file\", \"size\": 1, \"mode\": "
			    "420, \"hash\": \"%064d\", \"hlc\": 5, \"origin\": "
			    "\"n1\", \"prev_hlc\": 0, \"prev_origin\": \"\", "
			    "\"deleted\": false, \"lseq\": 1, %s}], \"next\": 1,"
			    " \"more\": false}", 0, badent[i]);
			m = json_tokener_parse(js);
			tap_ok(files_pull(b.db, &b.cfg, a.id, m, &f, NULL,
			    err, sizeof(err)) == FILES_EINPUT,
			    "bad field refused: %s", badent[i]);
			json_object_put(m);
		}
		tap_is_int(files_pull(b.db, &b.cfg, a.id, NULL, &f, NULL, err,
		    sizeof(err)), FILES_EINPUT, "NULL manifest refused");
	}
	tree(&b, d2, NULL);
	tap_is_str(d2, d1, "nothing written in B's folder");
	tap_is_int(q(b.db, "SELECT count(*) FROM files_index"), 0,
	    "nothing indexed on B");
	files_cursor(b.db, a.id, &cur, err, sizeof(err));
	tap_is_int(cur, 0, "cursor unchanged");
	tap_is_int(fa.calls, 0, "nothing fetched");

	/* B has a symlink "esc" -> outside; A has a real dir "esc". */
	util_fmt(lnk, sizeof(lnk), "%s/esc", b.root);
	if (symlink(out, lnk) == -1)
		die("symlink");
	puts_(&a, "esc/payload.txt", "should never land outside\n");
	puts_(&a, "esc/sub/deeper.txt", "nor this\n");
	memset(&st, 0, sizeof(st));
	tap_is_int(sync_one(&a, &b, &fa, 0, &st), FILES_OK,
	    "sync with a local symlink in the way completes");
	tap_ok(st.refused >= 1, "entries through the symlink refused (%lld)",
	    (long long)st.refused);
	{
		DIR *d = opendir(out);
		struct dirent *de;
		int n = 0;

		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		if (d != NULL)
			closedir(d);
		tap_is_int(n, 0, "nothing written outside the folder");
	}
	tap_ok(has(&b, "good.txt"), "the good file still arrived");
	util_fmt(lnk, sizeof(lnk), "%s/x", scratch);
	tap_ok(!has(&b, "../x") && access(lnk, F_OK) == -1,
	    "no ../x beside the folder");
	fpath_use_openat2(1);
	node_close(&a);
	node_close(&b);
}

/* Directories: a dir deleted on A while B adds a file in it keeps the
 * dir and the new file everywhere; the same dir created on both nodes
 * with different files merges without conflicts. */
static void
test_dirs(void)
{
	struct node a, b;
	struct files_sync_stats st;
	char buf[64], err[256];
	long long nconf;

	node_init(&a, "nodeA-dirs");
	node_init(&b, "nodeB-dirs");
	puts_(&a, "proj/old.txt", "old\n");
	puts_(&a, "proj/sub/older.txt", "older\n");
	sync_both(&a, &b);
	tick();
	rm(&a, "proj/sub/older.txt");
	rm(&a, "proj/sub");
	rm(&a, "proj/old.txt");
	rm(&a, "proj");
	files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
	tick();
	puts_(&b, "proj/new.txt", "new on B\n");	/* not scanned yet */
	tap_is_int(sync_one(&a, &b, NULL, 0, NULL), FILES_OK,
	    "dir delete vs a new file inside: pull");
	tap_ok(!has(&b, "proj/old.txt") && !has(&b, "proj/sub"),
	    "the deleted entries are gone on B");
	get(&b, "proj/new.txt", buf, sizeof(buf));
	tap_is_str(buf, "new on B\n", "the new file survives on B");
	sync_both(&a, &b);
	get(&a, "proj/new.txt", buf, sizeof(buf));
	tap_is_str(buf, "new on B\n", "and reaches A (dir recreated)");
	tap_ok(same_tree(&a, &b), "trees identical");

	tap_is_int(q(b.db, "SELECT count(*) FROM files_conflicts WHERE "
	    "kind = 'kept' AND path = 'proj'"), 1,
	    "the kept directory is recorded on B");
	nconf = q(a.db, "SELECT count(*) FROM files_conflicts") +
	    q(b.db, "SELECT count(*) FROM files_conflicts");
	tick();
	puts_(&a, "both/from-a.txt", "a\n");
	puts_(&b, "both/from-b.txt", "b\n");
	memset(&st, 0, sizeof(st));
	sync_both(&a, &b);
	tap_ok(has(&a, "both/from-b.txt") && has(&b, "both/from-a.txt"),
	    "same dir made on both: contents merge");
	tap_is_int(q(a.db, "SELECT count(*) FROM files_conflicts") +
	    q(b.db, "SELECT count(*) FROM files_conflicts"), nconf,
	    "no conflicts for a directory made twice");
	tap_ok(same_tree(&a, &b), "trees identical");
	node_close(&a);
	node_close(&b);
}

static int reader_ok;
static struct node *reader_node;

/* Runs while the transfer is half done: the target must still be the old
 * content, whole. */
static void
check_reader(void *arg)
{
	char buf[256];

	(void)arg;
	get(reader_node, "atomic.txt", buf, sizeof(buf));
	reader_ok = strcmp(buf, "old content\n") == 0;
}

/* Wrong bytes are discarded and hold the cursor; the next good pull
 * installs.  A reader sees old or new, never a mix; no temp left. */
static void
test_verify(void)
{
	struct node a, b;
	struct fetch_arg fa;
	struct files_sync_stats st;
	char buf[256], err[256], big[200000];
	int64_t before, after;
	int tmps;
	size_t i;

	node_init(&a, "nodeA-verify");
	node_init(&b, "nodeB-verify");
	puts_(&a, "atomic.txt", "old content\n");
	sync_one(&a, &b, NULL, 0, NULL);
	tick();
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	put(&a, "atomic.txt", big, sizeof(big), 0644);
	puts_(&a, "other.txt", "fine\n");
	files_cursor(b.db, a.id, &before, err, sizeof(err));
	memset(&fa, 0, sizeof(fa));
	fa.corrupt = 1;
	memset(&st, 0, sizeof(st));
	tap_is_int(sync_one(&a, &b, &fa, 0, &st), FILES_EPARTIAL,
	    "corrupted transfer reported as partial");
	tap_ok(st.errors >= 1, "counted as an error");
	get(&b, "atomic.txt", buf, sizeof(buf));
	tap_is_str(buf, "old content\n", "corrupt content not installed");
	files_cursor(b.db, a.id, &after, err, sizeof(err));
	tap_ok(after < q(a.db, "SELECT max(lseq) FROM files_index"),
	    "cursor not advanced past the failed entry (%lld -> %lld)",
	    (long long)before, (long long)after);
	tree(&b, buf, &tmps);
	tap_is_int(tmps, 0, "no temp file left after the failure");

	memset(&fa, 0, sizeof(fa));
	reader_node = &b;
	fa.midway = check_reader;
	tap_is_int(sync_one(&a, &b, &fa, 0, NULL), FILES_OK,
	    "good pull after the failure");
	tap_ok(reader_ok, "mid-transfer reader saw the whole old file");
	tap_ok(same_tree(&a, &b), "installed: identical, no temp files");
	node_close(&a);
	node_close(&b);
}

/* Conflict copies are capped per file: the oldest go. */
static void
test_cap(void)
{
	struct node a, b;
	char buf[64], err[256];
	int i;

	node_init(&a, "aaaa-cap");
	node_init(&b, "bbbb-cap");
	a.cfg.max_conflicts = 2;
	puts_(&a, "f.txt", "base\n");
	sync_both(&a, &b);
	for (i = 0; i < 4; i++) {
		tick();
		util_fmt(buf, sizeof(buf), "A%d\n", i);
		puts_(&a, "f.txt", buf);
		files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
		tick();
		util_fmt(buf, sizeof(buf), "B%d\n", i);
		puts_(&b, "f.txt", buf);
		files_scan(b.db, &b.cfg, NULL, err, sizeof(err));
		/* B wins every time; A makes the copies. */
		sync_one(&b, &a, NULL, 0, NULL);
		sync_one(&a, &b, NULL, 0, NULL);
		/* distinct copy names need distinct seconds or a suffix */
	}
	tap_is_int(conflict_copies(&a, "f", NULL, 0), 2,
	    "copies capped at 2 on the node that made them");
	sync_both(&a, &b);
	tap_ok(same_tree(&a, &b), "cap deletions propagate");
	node_close(&a);
	node_close(&b);
}

/* Upload side: an already-received temp file is verified and installed
 * by rename without replacing any other name; bad ones change nothing. */
static void
test_install_tmp(void)
{
	struct node a, b;
	json_object *m = NULL, *arr, *ent = NULL;
	char err[256], tmp[PATH_MAX], buf[128];
	int64_t since = 0;
	size_t i;

	node_init(&a, "nodeA-up");
	node_init(&b, "nodeB-up");
	puts_(&a, "up/file.txt", "uploaded bytes\n");
	puts_(&a, "app.db-wal", "x");
	files_scan(a.db, &a.cfg, NULL, err, sizeof(err));
	files_manifest(a.db, since, 0, &m, err, sizeof(err));
	json_object_object_get_ex(m, "entries", &arr);
	for (i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i), *p;

		json_object_object_get_ex(e, "path", &p);
		if (strcmp(json_object_get_string(p), "up/file.txt") == 0)
			ent = e;
	}
	util_fmt(tmp, sizeof(tmp), "%s/nginx-0000000001", scratch);
	util_write_file_atomic(tmp, "tampered bytes\n", 15, 0600);
	tap_is_int(files_install_tmp(b.db, &b.cfg, tmp, ent, NULL, err,
	    sizeof(err)), FILES_EINPUT, "upload with wrong hash refused");
	tap_ok(!has(&b, "up/file.txt"), "not installed");
	util_write_file_atomic(tmp, "uploaded bytes\n", 15, 0600);
	tap_is_int(files_install_tmp(b.db, &b.cfg, tmp, ent, NULL, err,
	    sizeof(err)), FILES_OK, "good upload installed");
	get(&b, "up/file.txt", buf, sizeof(buf));
	tap_is_str(buf, "uploaded bytes\n", "content in place");
	tap_ok(access(tmp, F_OK) == -1, "temp file moved, not copied");
	{
		json_object *e2 = json_object_new_object();

		json_object_object_foreach(ent, k, v)
			json_object_object_add(e2, k, json_object_get(v));
		json_object_object_add(e2, "path",
		    json_object_new_string("app.db"));
		util_write_file_atomic(tmp, "uploaded bytes\n", 15, 0600);
		tap_is_int(files_install_tmp(b.db, &b.cfg, tmp, e2, NULL, err,
		    sizeof(err)), FILES_EINPUT, "upload onto a DB refused");
		json_object_object_add(e2, "path",
		    json_object_new_string("../escape"));
		tap_is_int(files_install_tmp(b.db, &b.cfg, tmp, e2, NULL, err,
		    sizeof(err)), FILES_EINPUT, "upload to ../ refused");
		json_object_put(e2);
		unlink(tmp);
	}
	tap_ok(!has(&b, "app.db"), "DB untouched");
	json_object_put(m);
	node_close(&a);
	node_close(&b);
}

static long
maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* A 1 GiB (sparse) file is hashed and transferred in constant memory. */
static void
test_large(void)
{
	struct node a, b;
	char path[PATH_MAX * 2], ha[FILES_HASH_HEX + 1], hb[FILES_HASH_HEX + 1];
	int64_t sa = 0, sb_ = 0;
	long rss0, rss1;
	int fd;

	node_init(&a, "nodeA-large");
	node_init(&b, "nodeB-large");
	util_fmt(path, sizeof(path), "%s/big.bin", a.root);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) == -1 ||
	    ftruncate(fd, (off_t)1 << 30) == -1 ||
	    pwrite(fd, "head", 4, 0) != 4 ||
	    pwrite(fd, "middle", 6, (off_t)1 << 29) != 6 ||
	    pwrite(fd, "tail", 4, ((off_t)1 << 30) - 4) != 4)
		die("sparse file");
	close(fd);
	rss0 = maxrss_kb();
	tap_is_int(sync_one(&a, &b, NULL, 0, NULL), FILES_OK,
	    "1 GiB file synced");
	rss1 = maxrss_kb();
	util_fmt(path, sizeof(path), "%s/big.bin", a.root);
	fd = open(path, O_RDONLY);
	files_hash_fd(fd, ha, sizeof(ha), &sa);
	close(fd);
	util_fmt(path, sizeof(path), "%s/big.bin", b.root);
	fd = open(path, O_RDONLY);
	if (fd != -1) {
		files_hash_fd(fd, hb, sizeof(hb), &sb_);
		close(fd);
	} else
		hb[0] = '\0';
	tap_ok(sa == ((int64_t)1 << 30) && sb_ == sa, "sizes equal (1 GiB)");
	tap_is_str(hb, ha, "hashes equal");
	tap_ok(rss1 - rss0 < 64 * 1024, "peak RSS growth %ld KiB < 64 MiB",
	    rss1 - rss0);
	node_close(&a);
	node_close(&b);
}

/* A bundle answer is taken apart exactly, and a damaged one is refused
 * as a whole (nothing in it is trusted). */
static void
test_bundle_unpack(void)
{
	static const struct {
		const char	*body;
		const char	*why;
	} bad[] = {
		{ "F 3\nab", "truncated content" },
		{ "F 2\nab", "too few records" },
		{ "F 2\nabX gone\nF 1\nzz", "trailing bytes" },
		{ "F x\nab", "length not a number" },
		{ "F -1\nab", "negative length" },
		{ "F 99999999\nab", "length over the limit" },
		{ "Q 2\nab", "unknown record" },
		{ "F 2", "no newline" },
		{ "", "empty" },
	};
	char path[PATH_MAX], err[256], hex[FILES_HASH_HEX + 1];
	struct files_sink sink[3], *outs[3] = { &sink[0], &sink[1], &sink[2] };
	const char *good = "F 2\nabX gone\nF 0\n";
	int fds[3], failed[3];
	size_t i;

	for (i = 0; i < 3; i++) {
		util_fmt(path, sizeof(path), "%s/bundle-%zu", scratch, i);
		if ((fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1)
			die("open");
		files_sink_init(&sink[i], fds[i]);
	}
	tap_ok(files_bundle_unpack(good, strlen(good), 3, outs, failed, err,
	    sizeof(err)) == 0 && !failed[0] && failed[1] && !failed[2],
	    "bundle: a file, a refusal and an empty file are told apart");
	files_sink_final(&sink[0], hex, sizeof(hex));
	tap_ok(sink[0].written == 2 && pread(fds[0], path, 2, 0) == 2 &&
	    memcmp(path, "ab", 2) == 0, "bundle: the bytes land in the sink");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		files_sink_init(&sink[0], fds[0]);
		files_sink_init(&sink[1], fds[1]);
		tap_ok(files_bundle_unpack(bad[i].body, strlen(bad[i].body), 2,
		    outs, failed, err, sizeof(err)) == -1,
		    "bundle refused: %s (%s)", bad[i].why, err);
		files_sink_drop(&sink[0]);
		files_sink_drop(&sink[1]);
	}
	/* Whole records, the bytes all there: only the size cap can refuse
	 * the second, and the first shows a record at the cap passes. */
	for (i = 0; i < 2; i++) {
		size_t n = FILES_SMALL_MAX + i, hl;
		char *body = malloc(n + 32);
		int rc;

		if (body == NULL)
			die("malloc");
		hl = (size_t)snprintf(body, 32, "F %zu\n", n);
		memset(body + hl, 'x', n);
		memcpy(body + hl + n, "F 0\n", 4);
		files_sink_init(&sink[0], fds[0]);
		files_sink_init(&sink[1], fds[1]);
		rc = files_bundle_unpack(body, hl + n + 4, 2, outs, failed, err,
		    sizeof(err));
		if (i == 0)
			tap_ok(rc == 0 && !failed[0] && sink[0].written ==
			    (int64_t)n, "bundle: a record of the largest size");
		else
			tap_ok(rc == -1, "bundle refused: one byte over the "
			    "largest size (%s)", err);
		files_sink_drop(&sink[0]);
		files_sink_drop(&sink[1]);
		free(body);
	}
	for (i = 0; i < 3; i++)
		close(fds[i]);
}

/* Small files come in bundles; whatever a bundle does not bring (a file
 * it refuses, or everything when the exchange fails) is fetched alone. */
static void
test_bundle_fallback(void)
{
	static const char *const how[] = { "", "bundle works",
	    "bundle refuses every other file", "bundle fails as a whole" };
	static const int singles[] = { 0, 1, 11, 21 };
	struct node a, b;
	struct files_sync_stats st;
	struct fetch_arg fa;
	unsigned char big[100000];
	char rel[64], id[32];
	int mode, i;

	node_init(&a, "nodeA-bundle");
	for (i = 0; i < 20; i++) {
		util_fmt(rel, sizeof(rel), "small/%02d.txt", i);
		puts_(&a, rel, rel);
	}
	memset(big, 'b', sizeof(big));
	put(&a, "big.bin", big, sizeof(big), 0644);
	for (mode = 1; mode <= 3; mode++) {
		util_fmt(id, sizeof(id), "nodeB-bundle%d", mode);
		node_init(&b, id);
		memset(&fa, 0, sizeof(fa));
		fa.bundle = mode;
		memset(&st, 0, sizeof(st));
		tap_ok(sync_one(&a, &b, &fa, 0, &st) == FILES_OK &&
		    same_tree(&a, &b) && st.received == 21,
		    "bundle: %s: every file arrives", how[mode]);
		tap_ok(fa.many_calls == 1 && fa.calls == singles[mode],
		    "bundle: %s: 1 bundle, %d single fetches (got %d, %d)",
		    how[mode], singles[mode], fa.many_calls, fa.calls);
		node_close(&b);
	}
	node_close(&a);
}

/* A sink given odd-sized pieces (small start, block edges, holes) writes
 * exactly those bytes and hashes them as a second read would. */
static void
test_sink(void)
{
	static const size_t piece[] = { 1, 7, 4093, 65536, 3, 1048576,
	    1048573, 9, 2097152 + 5, 123457 };
	char path[PATH_MAX], hex[FILES_HASH_HEX + 1], want[FILES_HASH_HEX + 1];
	unsigned char *src, *back;
	struct files_sink sink;
	size_t total = 0, off = 0, i;
	int64_t size = 0;
	int fd, ok = 1;

	for (i = 0; i < sizeof(piece) / sizeof(piece[0]); i++)
		total += piece[i];
	total += 300000;	/* the hole */
	if ((src = calloc(1, total)) == NULL || (back = malloc(total)) == NULL)
		die("malloc");
	randombytes_buf(src, total - 300000 - 123457);
	randombytes_buf(src + total - 123457, 123457);
	util_fmt(path, sizeof(path), "%s/sink.bin", scratch);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1)
		die("open");
	files_sink_init(&sink, fd);
	for (i = 0; i < sizeof(piece) / sizeof(piece[0]); i++) {
		if (i == sizeof(piece) / sizeof(piece[0]) - 1) {
			ok = ok && files_sink_hole(&sink, 300000) == 0;
			off += 300000;
		}
		ok = ok && files_sink_write(&sink, src + off, piece[i]) == 0;
		off += piece[i];
	}
	ok = ok && files_sink_final(&sink, hex, sizeof(hex)) == 0;
	tap_ok(ok && sink.written == (int64_t)total, "sink: %zu bytes in odd "
	    "pieces and a hole taken", total);
	tap_ok(files_hash_fd(fd, want, sizeof(want), &size) == 0 &&
	    size == (int64_t)total && strcmp(hex, want) == 0,
	    "sink: its hash is the file's");
	tap_ok(pread(fd, back, total, 0) == (ssize_t)total &&
	    memcmp(src, back, total) == 0, "sink: the file holds the bytes");
	close(fd);
	free(src);
	free(back);
}

struct move_arg {
	struct node	*n;
	char		 to[PATH_MAX * 2];
};

/* A local process moves d out of the folder while a pull fetches. */
static void
move_out(void *arg)
{
	struct move_arg *m = arg;
	char from[PATH_MAX * 2];

	util_fmt(from, sizeof(from), "%s/d", m->n->root);
	if (rename(from, m->to) == -1)
		die("rename d out of the folder");
}

static void
test_moved_dir(void)
{
	static char big[300000];
	struct node a, b;
	struct fetch_arg fa;
	struct move_arg m;
	char path[PATH_MAX * 2], c = 0;
	int fd;

	node_init(&a, "nodeA-mv");
	node_init(&b, "nodeB-mv");
	memset(big, 'x', sizeof(big));
	put(&a, "d/big.bin", big, sizeof(big), 0644);
	puts_(&a, "d/gone.txt", "bye\n");
	sync_both(&a, &b);
	tick();
	memset(big, 'y', sizeof(big));
	put(&a, "d/big.bin", big, sizeof(big), 0644);
	rm(&a, "d/gone.txt");
	memset(&fa, 0, sizeof(fa));
	m.n = &b;
	util_fmt(m.to, sizeof(m.to), "%s/outside-d", scratch);
	fa.midway = move_out;	/* big.bin is fetched alone: midway runs */
	fa.midway_arg = &m;
	sync_one(&a, &b, &fa, 0, NULL);
	util_fmt(path, sizeof(path), "%s/outside-d/gone.txt", scratch);
	tap_ok(access(path, F_OK) == 0, "moved dir: a delete does not follow "
	    "a directory moved out of the folder during the fetch");
	util_fmt(path, sizeof(path), "%s/outside-d/big.bin", scratch);
	if ((fd = open(path, O_RDONLY)) != -1) {
		if (read(fd, &c, 1) != 1)
			c = 0;
		close(fd);
	}
	tap_ok(c == 'x', "moved dir: nor does an install (outside copy "
	    "still the old content)");
	tap_ok(has(&b, "d/big.bin"), "moved dir: the new content is "
	    "installed at its path in the folder");
	node_close(&a);
	node_close(&b);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	if (sodium_init() < 0)
		return 1;
	log_open(NULL, "t4002", getenv("TEST_VERBOSE") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	util_fmt(scratch, sizeof(scratch), "%s/t4002-XXXXXX", tmp ? tmp :
	    "/tmp");
	if (mkdtemp(scratch) == NULL)
		die("mkdtemp");
	test_basic();
	test_relay();
	test_conflict();
	test_modify_delete();
	test_hostile(1);
	test_hostile(0);
	test_dirs();
	test_verify();
	test_cap();
	test_install_tmp();
	test_large();
	test_sink();
	test_moved_dir();
	test_bundle_unpack();
	test_bundle_fallback();
	if (getenv("MESHSYNC_KEEP") == NULL)
		util_rmtree(scratch);
	else
		tap_diag("kept %s", scratch);
	return tap_done();
}
