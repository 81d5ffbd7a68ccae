/* update.c - the update engine: manifest of the app tree, staging with verification, journaled rename swap, recovery, script, health. */
#include "update.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fpath.h"
#include "jget.h"
#include "log.h"
#include "tm.h"
#include "util.h"

#define UPDATE_MAX_PRESERVED	4096	/* topmost preserved paths in a tree */
#define UPDATE_IO_CHUNK		(256 * 1024)
#define UPDATE_RELEASE_MAX	((int64_t)1 << 40)	/* bytes, all files */

void
update_crash_point(const char *point)
{
	const char *want = getenv("MESHSYNC_TEST_CRASH_AT");

	if (want != NULL && strcmp(want, point) == 0) {
		log_warnx("MESHSYNC_TEST_CRASH_AT=%s: killing this process",
		    point);
		raise(SIGKILL);
	}
}

void
update_cfg_init(struct update_cfg *u, const struct conf *c)
{
	memset(u, 0, sizeof(*u));
	util_strlcpy(u->app_dir, c->app_dir, sizeof(u->app_dir));
	/* No trailing slash: sibling names are built from it. */
	for (size_t l = strlen(u->app_dir); l > 1 && u->app_dir[l - 1] == '/';
	    l--)
		u->app_dir[l - 1] = '\0';
	util_strlcpy(u->node_dir, c->dir, sizeof(u->node_dir));
	util_strlcpy(u->instance_dir, c->instance_dir, sizeof(u->instance_dir));
	util_fmt(u->backups_dir, sizeof(u->backups_dir), "%s/backups", c->dir);
	util_fmt(u->log_path, sizeof(u->log_path), "%s/update.log", c->dir);
	util_strlcpy(u->preserve, c->preserve, sizeof(u->preserve));
	util_strlcpy(u->scripts, c->post_update_scripts, sizeof(u->scripts));
	util_strlcpy(u->health_url, c->health_url, sizeof(u->health_url));
	u->health_timeout = c->health_timeout;
	u->keep_backups = c->keep_backups;
}

/* ---- small path helpers ------------------------------------------------ */

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* path relative to app when it lies strictly inside it, else NULL. */
static const char *
inside(const char *app, const char *path)
{
	size_t l = strlen(app);

	if (strncmp(path, app, l) == 0 && path[l] == '/' && path[l + 1] != '\0')
		return path + l + 1;
	return NULL;
}

static int
sibling(char *buf, size_t bufsz, const char *app, const char *suffix)
{
	return util_fmt(buf, bufsz, "%s.meshsync-%s", app, suffix);
}

static int
mkdirs_parent(const char *path)
{
	char dir[UTIL_PATH_MAX], *slash;

	util_strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	return util_mkdirs(dir, 0755);
}

static int
do_rename(const char *from, const char *to, char *err, size_t errsz)
{
	if (rename(from, to) == -1) {
		util_fmt(err, errsz, "rename %s -> %s: %s", from, to,
		    strerror(errno));
		return -1;
	}
	util_fsync_parent(from);
	util_fsync_parent(to);
	return 0;
}

static void
stamp(char *buf, size_t bufsz)
{
	time_t t = time(NULL);
	struct tm tmv;

	gmtime_r(&t, &tmv);
	strftime(buf, bufsz, "%Y%m%dT%H%M%SZ", &tmv);
}

/* ---- preserve rules ---------------------------------------------------- */

static int
glob_hit(const char *pat, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	if (fnmatch(pat, rel, FNM_PATHNAME | FNM_PERIOD) == 0)
		return 1;
	return strchr(pat, '/') == NULL && fnmatch(pat, base, 0) == 0;
}

static int
under(const char *rel, const char *top)
{
	size_t l = strlen(top);

	return strncmp(rel, top, l) == 0 && (rel[l] == '\0' || rel[l] == '/');
}

int
update_is_preserved(const struct update_cfg *u, const char *rel)
{
	const char *nrel = inside(u->app_dir, u->node_dir);
	const char *irel = inside(u->app_dir, u->instance_dir);
	char prefix[UTIL_PATH_MAX], pat[256];
	const char *p;

	if ((nrel != NULL && under(rel, nrel)) ||
	    (irel != NULL && under(rel, irel)))
		return 1;
	/* Meshsync's own leftovers are never part of a release. */
	if (strncmp(rel, FPATH_TMP_PREFIX, strlen(FPATH_TMP_PREFIX)) == 0)
		return 1;
	/* A glob matching any ancestor directory covers the subtree. */
	for (size_t i = 0;; i++) {
		if (rel[i] != '/' && rel[i] != '\0')
			continue;
		if (i >= sizeof(prefix))
			return 0;
		memcpy(prefix, rel, i);
		prefix[i] = '\0';
		for (p = u->preserve; (p = util_list_next(p, pat,
		    sizeof(pat))) != NULL;)
			if (glob_hit(pat, prefix))
				return 1;
		if (rel[i] == '\0')
			return 0;
	}
}

/* ---- walking a tree ---------------------------------------------------- */

struct walk {
	const struct update_cfg	*u;
	json_object		*files;		/* manifest entries, or NULL */
	char			**preserved;	/* topmost preserved paths */
	int			 npreserved;
	int64_t			 bytes;
	char			*err;
	size_t			 errsz;
};

static int
walk_dir(struct walk *w, int dfd, const char *rel)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		util_fmt(w->err, w->errsz, "%s: %s", *rel ? rel : ".",
		    strerror(errno));
		close(dfd);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char child[UTIL_PATH_MAX], why[128];
		struct stat st;
		json_object *e;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (util_fmt(child, sizeof(child), "%s%s%s", rel, *rel ? "/" :
		    "", de->d_name) == -1) {
			log_warnx("update: path too long under %s: skipped", rel);
			continue;
		}
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (update_is_preserved(w->u, child)) {
			if (w->preserved != NULL) {
				if (w->npreserved == UPDATE_MAX_PRESERVED) {
					util_fmt(w->err, w->errsz, "more than %d "
					    "preserved paths", UPDATE_MAX_PRESERVED);
					rc = -1;
					break;
				}
				if ((w->preserved[w->npreserved] =
				    strdup(child)) == NULL) {
					util_fmt(w->err, w->errsz, "out of memory");
					rc = -1;
					break;
				}
				w->npreserved++;
			}
			continue;
		}
		if (w->files == NULL) {
			/* Only collecting preserved paths: descend dirs. */
			if (S_ISDIR(st.st_mode)) {
				int cfd = openat(dfd, de->d_name, O_RDONLY |
				    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (cfd != -1)
					rc = walk_dir(w, cfd, child);
			}
			continue;
		}
		if (fpath_check(child, why, sizeof(why)) == -1) {
			log_warnx("update: not in the release (%s): %s", why,
			    child);
			continue;
		}
		if (json_object_array_length(w->files) >= UPDATE_MAX_FILES) {
			util_fmt(w->err, w->errsz, "more than %d entries in the "
			    "application tree", UPDATE_MAX_FILES);
			rc = -1;
			break;
		}
		e = json_object_new_object();
		json_object_object_add(e, "path", json_object_new_string(child));
		json_object_object_add(e, "mode",
		    json_object_new_int((int)(st.st_mode & 07777)));
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			json_object_object_add(e, "kind",
			    json_object_new_string("dir"));
			json_object_array_add(w->files, e);
			if (cfd == -1) {
				util_fmt(w->err, w->errsz, "%s: %s", child,
				    strerror(errno));
				rc = -1;
			} else
				rc = walk_dir(w, cfd, child);
		} else if (S_ISREG(st.st_mode)) {
			char hex[FILES_HASH_HEX + 1];
			int64_t size = 0;
			int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW |
			    O_CLOEXEC);
			if (fd == -1 || files_hash_fd(fd, hex, sizeof(hex),
			    &size) == -1) {
				util_fmt(w->err, w->errsz, "%s: %s", child,
				    strerror(errno));
				if (fd != -1)
					close(fd);
				json_object_put(e);
				rc = -1;
				break;
			}
			close(fd);
			json_object_object_add(e, "kind",
			    json_object_new_string("file"));
			json_object_object_add(e, "size", json_object_new_int64(size));
			json_object_object_add(e, "hash", json_object_new_string(hex));
			json_object_array_add(w->files, e);
			w->bytes += size;
		} else if (S_ISLNK(st.st_mode)) {
			char target[UTIL_PATH_MAX], hex[FILES_HASH_HEX + 1];
			unsigned char h[32];
			ssize_t n = readlinkat(dfd, de->d_name, target,
			    sizeof(target) - 1);
			if (n <= 0) {
				json_object_put(e);
				continue;
			}
			target[n] = '\0';
			crypto_generichash_blake2b(h, sizeof(h),
			    (const unsigned char *)target, (size_t)n, NULL, 0);
			util_hex(hex, sizeof(hex), h, sizeof(h));
			json_object_object_add(e, "kind",
			    json_object_new_string("link"));
			json_object_object_add(e, "size", json_object_new_int64(n));
			json_object_object_add(e, "hash", json_object_new_string(hex));
			json_object_object_add(e, "target",
			    json_object_new_string(target));
			json_object_array_add(w->files, e);
		} else
			json_object_put(e);	/* sockets, fifos, devices */
	}
	closedir(d);
	return rc;
}

static int
by_path(const void *a, const void *b)
{
	json_object *const *x = a, *const *y = b;
	json_object *px, *py;

	json_object_object_get_ex(*x, "path", &px);
	json_object_object_get_ex(*y, "path", &py);
	return strcmp(json_object_get_string(px), json_object_get_string(py));
}

int
update_manifest_build(const struct update_cfg *u, json_object **out,
    char *err, size_t errsz)
{
	struct walk w = { .u = u, .err = err, .errsz = errsz };
	json_object *m;
	int fd;

	*out = NULL;
	if (u->app_dir[0] == '\0') {
		util_fmt(err, errsz, "app_dir is not set in meshsync.conf");
		return -1;
	}
	fd = open(u->app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		util_fmt(err, errsz, "app_dir %s: %s", u->app_dir,
		    strerror(errno));
		return -1;
	}
	w.files = json_object_new_array();
	if (w.files == NULL || walk_dir(&w, fd, "") == -1) {
		json_object_put(w.files);
		return -1;
	}
	json_object_array_sort(w.files, by_path);
	m = json_object_new_object();
	json_object_object_add(m, "format", json_object_new_int(1));
	json_object_object_add(m, "count", json_object_new_int64(
	    (int64_t)json_object_array_length(w.files)));
	json_object_object_add(m, "bytes", json_object_new_int64(w.bytes));
	json_object_object_add(m, "files", w.files);
	*out = m;
	return 0;
}

static void
free_preserved(struct walk *w)
{
	for (int i = 0; i < w->npreserved; i++)
		free(w->preserved[i]);
	free(w->preserved);
	w->preserved = NULL;
	w->npreserved = 0;
}

/* The topmost preserved paths present in the live tree. */
static int
list_preserved(const struct update_cfg *u, struct walk *w, char *err,
    size_t errsz)
{
	int fd;

	memset(w, 0, sizeof(*w));
	w->u = u;
	w->err = err;
	w->errsz = errsz;
	if ((w->preserved = calloc(UPDATE_MAX_PRESERVED, sizeof(char *))) ==
	    NULL) {
		util_fmt(err, errsz, "out of memory");
		return -1;
	}
	fd = open(u->app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		util_fmt(err, errsz, "app_dir %s: %s", u->app_dir,
		    strerror(errno));
		free_preserved(w);
		return -1;
	}
	if (walk_dir(w, fd, "") == -1) {
		free_preserved(w);
		return -1;
	}
	return 0;
}

/* ---- manifest checks --------------------------------------------------- */

static int
jint(json_object *o, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

int
update_manifest_check(json_object *m, char *err, size_t errsz)
{
	json_object *files;
	const char *prev = NULL;
	int64_t total = 0;
	size_t n;

	if (m == NULL || !json_object_is_type(m, json_type_object) ||
	    !json_object_object_get_ex(m, "files", &files) ||
	    !json_object_is_type(files, json_type_array)) {
		util_fmt(err, errsz, "manifest: not an object with a files "
		    "array");
		return -1;
	}
	n = json_object_array_length(files);
	if (n > UPDATE_MAX_FILES) {
		util_fmt(err, errsz, "manifest: more than %d entries",
		    UPDATE_MAX_FILES);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(files, i);
		const char *path = jget_str(e, "path", NULL);
		const char *kind = jget_str(e, "kind", NULL);
		char why[128];
		int64_t mode, size;

		if (path == NULL || kind == NULL || jint(e, "mode", &mode) == -1 ||
		    mode < 0 || mode > 07777) {
			util_fmt(err, errsz, "manifest entry %zu: missing or "
			    "bad path, kind or mode", i);
			return -1;
		}
		if (fpath_check(path, why, sizeof(why)) == -1) {
			util_fmt(err, errsz, "manifest entry %zu: unsafe path "
			    "(%s)", i, why);
			return -1;
		}
		if (prev != NULL && strcmp(prev, path) >= 0) {
			util_fmt(err, errsz, "manifest entry %zu: paths not in "
			    "order or duplicated", i);
			return -1;
		}
		prev = path;
		if (strcmp(kind, "dir") == 0)
			continue;
		if ((strcmp(kind, "file") != 0 && strcmp(kind, "link") != 0) ||
		    jint(e, "size", &size) == -1 || size < 0 ||
		    !util_is_hex(jget_str(e, "hash", NULL), FILES_HASH_HEX)) {
			util_fmt(err, errsz, "manifest entry %zu: bad kind, size "
			    "or hash", i);
			return -1;
		}
		/* Bounded, so that no sum of sizes (the disk-space check)
		 * can overflow. */
		if (size > UPDATE_RELEASE_MAX - total) {
			util_fmt(err, errsz, "manifest entry %zu: the release "
			    "would be larger than %lld GiB", i,
			    (long long)(UPDATE_RELEASE_MAX >> 30));
			return -1;
		}
		total += size;
		if (strcmp(kind, "link") == 0) {
			const char *t = jget_str(e, "target", NULL);
			unsigned char h[32];
			char hex[FILES_HASH_HEX + 1];
			if (t == NULL || *t == '\0' || strlen(t) >= UTIL_PATH_MAX) {
				util_fmt(err, errsz, "manifest entry %zu: bad "
				    "link target", i);
				return -1;
			}
			crypto_generichash_blake2b(h, sizeof(h),
			    (const unsigned char *)t, strlen(t), NULL, 0);
			util_hex(hex, sizeof(hex), h, sizeof(h));
			if (strcmp(hex, jget_str(e, "hash", NULL)) != 0) {
				util_fmt(err, errsz, "manifest entry %zu: link "
				    "hash does not match its target", i);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- staging ----------------------------------------------------------- */

/* Copy the live file rel (same size expected) into out; 0 or -1. */
static int
copy_live(int appfd, const char *rel, int64_t size, struct files_sink *out)
{
	char *buf = NULL;
	struct stat st;
	int in, rc = -1;

	if ((in = fpath_open(appfd, rel, O_RDONLY, 0)) == -1)
		return -1;
	if (fstat(in, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size != size ||
	    (buf = malloc(UPDATE_IO_CHUNK)) == NULL)
		goto done;
	for (;;) {
		ssize_t n = read(in, buf, UPDATE_IO_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		if (files_sink_write(out, buf, (size_t)n) == -1)
			goto done;
	}
	rc = 0;
done:
	free(buf);
	close(in);
	return rc;
}

/* Does what went into s (ended here) have this size and hash?  1 yes,
 * 0 no, -1 when it could not be written (errno). */
static int
sink_holds(struct files_sink *s, const char *hash, int64_t size)
{
	char hex[FILES_HASH_HEX + 1];

	if (files_sink_final(s, hex, sizeof(hex)) == -1)
		return -1;
	return s->written == size && strcmp(hex, hash) == 0;
}

static int
stage_file(const struct update_cfg *u, int appfd, int sfd, json_object *e,
    const struct files_fetcher *f, struct update_stats *st, char *err,
    size_t errsz)
{
	const char *path = jget_str(e, "path", NULL);
	const char *hash = jget_str(e, "hash", NULL);
	char base[FPATH_NAME_MAX + 1], why[256];
	struct files_sink sink;
	int64_t size = 0, mode = 0644;
	int pfd, fd, held, rc = -1;

	(void)u;
	jint(e, "size", &size);
	jint(e, "mode", &mode);
	if ((pfd = fpath_open_parent(sfd, path, 1, base, sizeof(base))) == -1) {
		util_fmt(err, errsz, "stage %s: %s", path, strerror(errno));
		return -1;
	}
	fd = openat(pfd, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	close(pfd);
	if (fd == -1) {
		util_fmt(err, errsz, "stage %s: %s", path, strerror(errno));
		return -1;
	}
	/* Unchanged content is taken from the live tree (and verified like
	 * anything fetched, hashed as it is copied); only what differs
	 * travels. */
	files_sink_init(&sink, fd);
	if (appfd != -1 && copy_live(appfd, path, size, &sink) == 0 &&
	    sink_holds(&sink, hash, size) == 1) {
		st->reused++;
	} else {
		files_sink_drop(&sink);
		if (ftruncate(fd, 0) == -1 || lseek(fd, 0, SEEK_SET) == -1) {
			util_fmt(err, errsz, "stage %s: %s", path,
			    strerror(errno));
			goto done;
		}
		files_sink_init(&sink, fd);
		if (f->fetch(f->arg, path, hash, size, &sink, why,
		    sizeof(why)) == -1) {
			files_sink_drop(&sink);
			util_fmt(err, errsz, "fetching %s: %s", path, why);
			goto done;
		}
		held = sink_holds(&sink, hash, size);
		if (held == -1) {
			util_fmt(err, errsz, "stage %s: %s", path,
			    strerror(errno));
			goto done;
		}
		if (held == 0) {
			util_fmt(err, errsz, "%s does not match its hash in the "
			    "manifest: release refused, nothing changed", path);
			goto done;
		}
		st->fetched++;
		st->bytes_fetched += size;
	}
	if (fchmod(fd, (mode_t)(mode & 07777)) == -1) {
		util_fmt(err, errsz, "chmod %s: %s", path, strerror(errno));
		goto done;
	}
	st->files++;
	rc = 0;
done:
	close(fd);
	return rc;
}

int
update_stage(const struct update_cfg *u, json_object *manifest,
    const char *id, const struct files_fetcher *f, char *stage,
    size_t stagesz, struct update_stats *st, char *err, size_t errsz)
{
	char suffix[64], parent[UTIL_PATH_MAX], *slash;
	json_object *files;
	struct statvfs vfs;
	struct stat ast;
	int64_t need = UPDATE_DISK_MARGIN;
	int appfd = -1, sfd = -1;
	size_t n;

	memset(st, 0, sizeof(*st));
	if (update_manifest_check(manifest, err, errsz) == -1)
		return -1;
	json_object_object_get_ex(manifest, "files", &files);
	n = json_object_array_length(files);
	for (size_t i = 0; i < n; i++) {
		int64_t size = 0;
		json_object *e = json_object_array_get_idx(files, i);
		if (jint(e, "size", &size) == 0)
			need += size;
	}
	util_strlcpy(parent, u->app_dir, sizeof(parent));
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent)
		*slash = '\0';
	if (statvfs(parent, &vfs) == -1) {
		util_fmt(err, errsz, "%s: %s", parent, strerror(errno));
		return -1;
	}
	if ((int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize < need) {
		util_fmt(err, errsz, "not enough disk space next to %s: the "
		    "release needs %lld MiB, %lld MiB free; nothing changed",
		    u->app_dir, (long long)(need >> 20),
		    (long long)(((int64_t)vfs.f_bavail *
		    (int64_t)vfs.f_frsize) >> 20));
		return -1;
	}
	util_fmt(suffix, sizeof(suffix), "stage-%s", id);
	if (sibling(stage, stagesz, u->app_dir, suffix) == -1) {
		util_fmt(err, errsz, "app_dir path too long");
		return -1;
	}
	util_rmtree(stage);	/* a leftover of the same id */
	if (stat(u->app_dir, &ast) == -1)
		ast.st_mode = 0755;
	if (mkdir(stage, 0700) == -1 ||
	    (sfd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		util_fmt(err, errsz, "%s: %s", stage, strerror(errno));
		return -1;
	}
	appfd = open(u->app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(files, i);
		const char *path = jget_str(e, "path", NULL);
		const char *kind = jget_str(e, "kind", NULL);
		char base[FPATH_NAME_MAX + 1];
		int pfd;

		if (update_is_preserved(u, path)) {
			st->skipped++;
			continue;
		}
		if (strcmp(kind, "dir") == 0) {
			if (fpath_mkdirs(sfd, path, 0700) == -1) {
				util_fmt(err, errsz, "stage %s: %s", path,
				    strerror(errno));
				goto fail;
			}
		} else if (strcmp(kind, "file") == 0) {
			if (stage_file(u, appfd, sfd, e, f, st, err, errsz) == -1)
				goto fail;
		} else {
			if ((pfd = fpath_open_parent(sfd, path, 1, base,
			    sizeof(base))) == -1 ||
			    symlinkat(jget_str(e, "target", NULL), pfd, base) == -1) {
				util_fmt(err, errsz, "stage link %s: %s", path,
				    strerror(errno));
				if (pfd != -1)
					close(pfd);
				goto fail;
			}
			close(pfd);
		}
	}
	/* Directory modes last (children first), so a read-only directory
	 * did not stop its own files from being written. */
	for (size_t i = n; i > 0; i--) {
		json_object *e = json_object_array_get_idx(files, i - 1);
		int64_t mode = 0755;
		int dfd;

		if (strcmp(jget_str(e, "kind", NULL), "dir") != 0 ||
		    update_is_preserved(u, jget_str(e, "path", NULL)))
			continue;
		jint(e, "mode", &mode);
		if ((dfd = fpath_open(sfd, jget_str(e, "path", NULL), O_RDONLY |
		    O_DIRECTORY, 0)) == -1 || fchmod(dfd, (mode_t)mode) == -1) {
			util_fmt(err, errsz, "chmod %s: %s", jget_str(e, "path", NULL),
			    strerror(errno));
			if (dfd != -1)
				close(dfd);
			goto fail;
		}
		close(dfd);
	}
	fchmod(sfd, ast.st_mode & 07777);
	/* One syncfs instead of an fsync per file: the stage is complete on
	 * disk before any journal can point at it. */
	if (syncfs(sfd) == -1) {
		util_fmt(err, errsz, "sync %s: %s", stage, strerror(errno));
		goto fail;
	}
	util_fsync_parent(stage);
	close(sfd);
	if (appfd != -1)
		close(appfd);
	return 0;
fail:
	close(sfd);
	if (appfd != -1)
		close(appfd);
	util_rmtree(stage);
	return -1;
}

/* ---- the journal ------------------------------------------------------- */

struct journal {
	char	 op[16];			/* "update" | "restore" */
	char	 mode[16];			/* "undo" | "finish" */
	char	 id[UPDATE_ID_HEX];
	char	 app[UTIL_PATH_MAX];
	char	 stage[UTIL_PATH_MAX];
	char	 source[UTIL_PATH_MAX];		/* restore: backup moved in */
	char	 displaced_phys[UTIL_PATH_MAX];	/* where APP goes in step 2 */
	char	 displaced_final[UTIL_PATH_MAX];/* where it is after step 3 */
	char	**preserve;
	int	 npreserve;
};

static void
journal_free(struct journal *j)
{
	for (int i = 0; i < j->npreserve; i++)
		free(j->preserve[i]);
	free(j->preserve);
	j->preserve = NULL;
	j->npreserve = 0;
}

static int
journal_path(char *buf, size_t bufsz, const char *app)
{
	return sibling(buf, bufsz, app, "journal");
}

static int
journal_write(const struct journal *j, char *err, size_t errsz)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char path[UTIL_PATH_MAX];
	const char *s;
	int rc;

	json_object_object_add(o, "op", json_object_new_string(j->op));
	json_object_object_add(o, "mode", json_object_new_string(j->mode));
	json_object_object_add(o, "id", json_object_new_string(j->id));
	json_object_object_add(o, "app", json_object_new_string(j->app));
	json_object_object_add(o, "stage", json_object_new_string(j->stage));
	json_object_object_add(o, "source", json_object_new_string(j->source));
	json_object_object_add(o, "displaced_phys",
	    json_object_new_string(j->displaced_phys));
	json_object_object_add(o, "displaced_final",
	    json_object_new_string(j->displaced_final));
	for (int i = 0; i < j->npreserve; i++)
		json_object_array_add(arr, json_object_new_string(j->preserve[i]));
	json_object_object_add(o, "preserve", arr);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	journal_path(path, sizeof(path), j->app);
	rc = util_write_file_atomic(path, s, strlen(s), 0600);
	if (rc == -1)
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
	json_object_put(o);
	return rc;
}

static int
journal_read(const char *path, struct journal *j, char *err, size_t errsz)
{
	json_object *o = NULL, *arr;
	char *text = NULL;
	const char *v;
	size_t n;

	memset(j, 0, sizeof(*j));
	if (util_read_file(path, 16 << 20, &text, NULL) == -1) {
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	o = json_tokener_parse(text);
	free(text);
	if (o == NULL || !json_object_object_get_ex(o, "preserve", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		util_fmt(err, errsz, "%s: unreadable journal", path);
		json_object_put(o);
		return -1;
	}
#define JCOPY(f) do { v = jget_str(o, #f, NULL); if (v == NULL || \
    util_strlcpy(j->f, v, sizeof(j->f)) == -1) goto bad; } while (0)
	JCOPY(op); JCOPY(mode); JCOPY(id); JCOPY(app); JCOPY(stage);
	JCOPY(source); JCOPY(displaced_phys); JCOPY(displaced_final);
#undef JCOPY
	n = json_object_array_length(arr);
	if ((j->preserve = calloc(n + 1, sizeof(char *))) == NULL)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		const char *p = json_object_get_string(
		    json_object_array_get_idx(arr, i));
		char why[128];
		if (p == NULL || fpath_check(p, why, sizeof(why)) == -1 ||
		    (j->preserve[j->npreserve] = strdup(p)) == NULL)
			goto bad;
		j->npreserve++;
	}
	json_object_put(o);
	return 0;
bad:
	util_fmt(err, errsz, "%s: malformed journal", path);
	json_object_put(o);
	journal_free(j);
	return -1;
}

static void
journal_remove(const char *app)
{
	char path[UTIL_PATH_MAX];

	journal_path(path, sizeof(path), app);
	unlink(path);
	util_fsync_parent(path);
}

/*
 * Drive the journal forward to the end: steps 0-3 as far as they are not
 * done yet.  Used both for the swap itself and to finish a restore.
 */
static int
journal_finish(const struct journal *j, char *err, size_t errsz)
{
	char a[UTIL_PATH_MAX], s[UTIL_PATH_MAX];

	if (j->source[0] != '\0' && !exists(j->stage) && exists(j->source) &&
	    !exists(j->displaced_final)) {
		if (do_rename(j->source, j->stage, err, errsz) == -1)
			return -1;
	}
	if (exists(j->stage) && exists(j->app)) {
		/* Step 1, the node directory (if inside) last of all: it
		 * is away from its usual path from here to step 3. */
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < j->npreserve; i++) {
				char top[UTIL_PATH_MAX];
				int is_node;
				util_fmt(top, sizeof(top), "%s/%s/", j->stage,
				    j->preserve[i]);
				is_node = strncmp(j->displaced_phys, top,
				    strlen(top)) == 0;
				if ((pass == 0) == is_node)
					continue;
				util_fmt(a, sizeof(a), "%s/%s", j->app,
				    j->preserve[i]);
				util_fmt(s, sizeof(s), "%s/%s", j->stage,
				    j->preserve[i]);
				if (!exists(a) || exists(s))
					continue;
				if (mkdirs_parent(s) == -1) {
					util_fmt(err, errsz, "%s: %s", s,
					    strerror(errno));
					return -1;
				}
				if (do_rename(a, s, err, errsz) == -1)
					return -1;
				update_crash_point("preserve");
			}
		if (mkdirs_parent(j->displaced_phys) == -1) {
			util_fmt(err, errsz, "%s: %s", j->displaced_phys,
			    strerror(errno));
			return -1;
		}
		if (do_rename(j->app, j->displaced_phys, err, errsz) == -1)
			return -1;
		update_crash_point("backup");
	}
	if (exists(j->stage) && !exists(j->app)) {
		if (do_rename(j->stage, j->app, err, errsz) == -1)
			return -1;
	}
	if (exists(j->stage) || !exists(j->app)) {
		util_fmt(err, errsz, "swap of %s did not complete", j->app);
		return -1;
	}
	return 0;
}

/* Take back what an interrupted journal did (stage present only). */
static int
journal_undo(const struct journal *j, char *err, size_t errsz)
{
	char a[UTIL_PATH_MAX], s[UTIL_PATH_MAX];

	if (!exists(j->stage))
		return 0;
	if (!exists(j->app) && do_rename(j->displaced_phys, j->app, err,
	    errsz) == -1)
		return -1;
	for (int i = j->npreserve; i > 0; i--) {
		util_fmt(a, sizeof(a), "%s/%s", j->app, j->preserve[i - 1]);
		util_fmt(s, sizeof(s), "%s/%s", j->stage, j->preserve[i - 1]);
		if (exists(s) && !exists(a) && do_rename(s, a, err, errsz) == -1)
			return -1;
	}
	/* Never delete a stage that still holds preserved data. */
	for (int i = 0; i < j->npreserve; i++) {
		util_fmt(s, sizeof(s), "%s/%s", j->stage, j->preserve[i]);
		if (exists(s)) {
			util_fmt(err, errsz, "%s is in both %s and %s: left for "
			    "you to resolve", j->preserve[i], j->app, j->stage);
			return -1;
		}
	}
	if (j->source[0] != '\0')
		return do_rename(j->stage, j->source, err, errsz);
	if (util_rmtree(j->stage) == -1) {
		util_fmt(err, errsz, "removing %s: %s", j->stage,
		    strerror(errno));
		return -1;
	}
	util_fsync_parent(j->stage);
	return 0;
}

static int
journal_run_recovery(const struct journal *j, enum update_recovery *what,
    char *detail, size_t detailsz, char *err, size_t errsz)
{
	if (!exists(j->stage) && exists(j->displaced_final)) {
		*what = UPDATE_REC_COMPLETED;
		util_fmt(detail, detailsz, "the interrupted %s of %s had "
		    "completed", j->op, j->app);
	} else if (strcmp(j->mode, "finish") == 0) {
		if (journal_finish(j, err, errsz) == -1)
			return -1;
		*what = UPDATE_REC_COMPLETED;
		util_fmt(detail, detailsz, "the interrupted %s of %s was "
		    "finished", j->op, j->app);
	} else {
		if (journal_undo(j, err, errsz) == -1)
			return -1;
		*what = UPDATE_REC_UNDONE;
		util_fmt(detail, detailsz, "the interrupted %s of %s was "
		    "undone: the previous tree is in place", j->op, j->app);
	}
	if (*what == UPDATE_REC_COMPLETED && strcmp(j->op, "restore") == 0)
		*what = UPDATE_REC_RESTORED;
	journal_remove(j->app);
	return 0;
}

int
update_journal_exists(const struct update_cfg *u)
{
	char path[UTIL_PATH_MAX];

	return u->app_dir[0] != '\0' &&
	    journal_path(path, sizeof(path), u->app_dir) == 0 && exists(path);
}

int
update_lock(const struct update_cfg *u)
{
	char path[UTIL_PATH_MAX];
	int fd;

	if (sibling(path, sizeof(path), u->app_dir, "lock") == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Stages without a journal only ever hold fetched files: delete them. */
static void
remove_stray_stages(const struct update_cfg *u)
{
	char dir[UTIL_PATH_MAX], prefix[UTIL_PATH_MAX], path[UTIL_PATH_MAX];
	const char *base;
	struct dirent *de;
	DIR *d;

	util_strlcpy(dir, u->app_dir, sizeof(dir));
	base = strrchr(u->app_dir, '/');
	if (base == NULL)
		return;
	dir[base - u->app_dir == 0 ? 1 : base - u->app_dir] = '\0';
	util_fmt(prefix, sizeof(prefix), "%s.meshsync-stage-", base + 1);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    util_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) == 0) {
			log_info("removing an unfinished stage: %s", path);
			util_rmtree(path);
		}
	closedir(d);
}

int
update_recover(const struct update_cfg *u, enum update_recovery *what,
    char *detail, size_t detailsz, char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], scratch[512];
	struct journal j;
	int rc;

	*what = UPDATE_REC_NONE;
	if (detail == NULL) {
		detail = scratch;
		detailsz = sizeof(scratch);
	}
	*detail = '\0';
	if (u->app_dir[0] == '\0')
		return 0;
	journal_path(path, sizeof(path), u->app_dir);
	if (exists(path)) {
		if (journal_read(path, &j, err, errsz) == -1)
			return -1;
		rc = journal_run_recovery(&j, what, detail, detailsz, err, errsz);
		journal_free(&j);
		if (rc == -1)
			return -1;
		log_warnx("update recovery: %s", detail);
	}
	remove_stray_stages(u);
	return 0;
}

int
update_recover_orphan(const char *node_dir, char *detail, size_t detailsz)
{
	char anc[UTIL_PATH_MAX], path[UTIL_PATH_MAX], err[512], *slash;
	enum update_recovery what;
	struct journal j;
	int rc;

	if (util_strlcpy(anc, node_dir, sizeof(anc)) == -1)
		return 0;
	while ((slash = strrchr(anc, '/')) != NULL && slash != anc) {
		*slash = '\0';
		if (journal_path(path, sizeof(path), anc) == -1 || !exists(path))
			continue;
		if (journal_read(path, &j, err, sizeof(err)) == -1 ||
		    strcmp(j.app, anc) != 0) {
			util_fmt(detail, detailsz, "%s", err);
			return -1;
		}
		rc = journal_run_recovery(&j, &what, detail, detailsz, err,
		    sizeof(err));
		journal_free(&j);
		if (rc == -1) {
			util_fmt(detail, detailsz, "%s", err);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* ---- swap and restore -------------------------------------------------- */

static int
plan_journal(const struct update_cfg *u, struct journal *j, const char *op,
    const char *mode, const char *id, const char *stage,
    const char *displaced_name, char *err, size_t errsz)
{
	const char *nrel = inside(u->app_dir, u->node_dir);
	struct walk w;

	memset(j, 0, sizeof(*j));
	util_strlcpy(j->op, op, sizeof(j->op));
	util_strlcpy(j->mode, mode, sizeof(j->mode));
	util_strlcpy(j->id, id, sizeof(j->id));
	util_strlcpy(j->app, u->app_dir, sizeof(j->app));
	util_strlcpy(j->stage, stage, sizeof(j->stage));
	if (util_fmt(j->displaced_final, sizeof(j->displaced_final), "%s/%s",
	    u->backups_dir, displaced_name) == -1 ||
	    (nrel != NULL ? util_fmt(j->displaced_phys,
	    sizeof(j->displaced_phys), "%s/%s/backups/%s", stage, nrel,
	    displaced_name) : util_fmt(j->displaced_phys,
	    sizeof(j->displaced_phys), "%s", j->displaced_final)) == -1) {
		util_fmt(err, errsz, "paths too long");
		return -1;
	}
	if (exists(j->displaced_final)) {
		util_fmt(err, errsz, "%s exists already", j->displaced_final);
		return -1;
	}
	if (util_mkdirs(u->backups_dir, 0700) == -1) {
		util_fmt(err, errsz, "%s: %s", u->backups_dir, strerror(errno));
		return -1;
	}
	if (list_preserved(u, &w, err, errsz) == -1)
		return -1;
	j->preserve = w.preserved;
	j->npreserve = w.npreserved;
	return 0;
}

/* Make the parents of every preserved path inside dir (before any move):
 * a file where a directory is needed fails here, while nothing moved. */
static int
prepare_parents(const struct journal *j, const char *dir, char *err,
    size_t errsz)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd == -1) {
		util_fmt(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < j->npreserve; i++) {
		char parent[UTIL_PATH_MAX], *slash;
		util_strlcpy(parent, j->preserve[i], sizeof(parent));
		if ((slash = strrchr(parent, '/')) == NULL)
			continue;
		*slash = '\0';
		if (fpath_mkdirs(dfd, parent, 0755) == -1) {
			util_fmt(err, errsz, "the new tree has no directory "
			    "%s for preserved %s: %s", parent, j->preserve[i],
			    strerror(errno));
			close(dfd);
			return -1;
		}
	}
	close(dfd);
	return 0;
}

int
update_swap(const struct update_cfg *u, const char *stage, const char *id,
    char *backup, size_t backupsz, char *err, size_t errsz)
{
	char name[128], ts[32], why[512];
	enum update_recovery what;
	struct journal j;

	stamp(ts, sizeof(ts));
	util_fmt(name, sizeof(name), "app-%s-%.8s", ts, id);
	if (plan_journal(u, &j, "update", "undo", id, stage, name, err,
	    errsz) == -1 || prepare_parents(&j, stage, err, errsz) == -1 ||
	    journal_write(&j, err, errsz) == -1) {
		journal_free(&j);
		util_rmtree(stage);
		return -1;
	}
	if (journal_finish(&j, err, errsz) == -1) {
		/* Put everything back the way it was. */
		if (journal_run_recovery(&j, &what, why, sizeof(why), why,
		    sizeof(why)) == -1)
			log_err("update: swap failed and could not be undone: "
			    "%s", why);
		journal_free(&j);
		return -1;
	}
	update_crash_point("swapped");
	journal_remove(u->app_dir);
	journal_free(&j);
	util_strlcpy(backup, name, backupsz);
	return 0;
}

static int
newest(const struct update_cfg *u, const char *prefix, char *name,
    size_t namesz)
{
	struct dirent *de;
	DIR *d = opendir(u->backups_dir);
	int found = 0;

	*name = '\0';
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strcmp(de->d_name, name) > 0) {
			util_strlcpy(name, de->d_name, namesz);
			found = 1;
		}
	closedir(d);
	return found;
}

int
update_restore(const struct update_cfg *u, const char *name, const char *id,
    char *restored, size_t restoredsz, char *err, size_t errsz)
{
	char pick[256], stage[UTIL_PATH_MAX], dname[128], ts[32], suffix[64];
	struct journal j;
	struct stat st;

	if (name == NULL) {
		if (!newest(u, "app-", pick, sizeof(pick))) {
			util_fmt(err, errsz, "no backup to restore in %s",
			    u->backups_dir);
			return 1;
		}
		name = pick;
	}
	if (strchr(name, '/') != NULL || strncmp(name, "app-", 4) != 0) {
		util_fmt(err, errsz, "not a backup name: %s", name);
		return -1;
	}
	util_fmt(suffix, sizeof(suffix), "restore-%s", id);
	sibling(stage, sizeof(stage), u->app_dir, suffix);
	stamp(ts, sizeof(ts));
	util_fmt(dname, sizeof(dname), "rolled-back-%s-%.8s", ts, id);
	if (plan_journal(u, &j, "restore", "finish", id, stage, dname, err,
	    errsz) == -1)
		return -1;
	util_fmt(j.source, sizeof(j.source), "%s/%s", u->backups_dir, name);
	if (lstat(j.source, &st) == -1 || !S_ISDIR(st.st_mode)) {
		util_fmt(err, errsz, "%s: not a backup directory", j.source);
		journal_free(&j);
		return -1;
	}
	if (prepare_parents(&j, j.source, err, errsz) == -1 ||
	    journal_write(&j, err, errsz) == -1) {
		journal_free(&j);
		return -1;
	}
	/* A restore is finished even after a crash: it runs because the
	 * live tree is the one not wanted. */
	if (journal_finish(&j, err, errsz) == -1) {
		journal_free(&j);
		return -1;
	}
	journal_remove(u->app_dir);
	journal_free(&j);
	util_strlcpy(restored, name, restoredsz);
	return 0;
}

/* ---- backups ----------------------------------------------------------- */

static int
cmp_desc(const void *a, const void *b)
{
	return strcmp(*(char *const *)b, *(char *const *)a);
}

/* Names in backups_dir starting with prefix, newest first; caller frees. */
static int
backup_names(const struct update_cfg *u, const char *prefix, char ***out)
{
	struct dirent *de;
	DIR *d = opendir(u->backups_dir);
	char **v = NULL;
	int n = 0;

	*out = NULL;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char **g;
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if ((g = realloc(v, (size_t)(n + 1) * sizeof(*v))) == NULL)
			break;
		v = g;
		if ((v[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, (size_t)n, sizeof(*v), cmp_desc);
	*out = v;
	return n;
}

void
update_prune_backups(const struct update_cfg *u)
{
	static const char *const kinds[] = { "app-", "rolled-back-" };

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char **v, path[UTIL_PATH_MAX];
		int n = backup_names(u, kinds[k], &v);
		for (int i = 0; i < n; i++) {
			if (i >= u->keep_backups && util_fmt(path, sizeof(path),
			    "%s/%s", u->backups_dir, v[i]) == 0) {
				log_info("removing old backup %s", v[i]);
				util_rmtree(path);
			}
			free(v[i]);
		}
		free(v);
	}
}

json_object *
update_backups(const struct update_cfg *u)
{
	static const char *const kinds[] = { "app-", "rolled-back-" };
	json_object *arr = json_object_new_array();

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char **v;
		int n = backup_names(u, kinds[k], &v);
		for (int i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(v[i]));
			json_object_object_add(o, "kind", json_object_new_string(
			    k == 0 ? "app" : "rolled-back"));
			json_object_array_add(arr, o);
			free(v[i]);
		}
		free(v);
	}
	return arr;
}

/* ---- post-update script and health ------------------------------------- */

/* Close every descriptor above 2 except keep (-1: none). */
static void
close_above_stdio(int keep)
{
	if (keep > 3)
		close_range(3, (unsigned)keep - 1, 0);
	close_range(keep >= 3 ? (unsigned)keep + 1 : 3, ~0U, 0);
}

int
update_fork_detached(const char *cwd, const char *log_path,
    const char *banner, int keep_fd)
{
	pid_t pid;
	int fd, status;

	if ((pid = fork()) == -1)
		return -1;
	if (pid != 0) {
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		return 1;
	}
	/* The intermediate child exits at once: the caller reaps it now,
	 * and the process left is init's to reap, whatever we do later. */
	setsid();
	if (fork() != 0)
		_exit(0);
	if (cwd != NULL && chdir(cwd) == -1)
		_exit(127);
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, 0);
		close(fd);
	}
	if ((fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT, 0644)) != -1) {
		if (banner != NULL)
			dprintf(fd, "%s", banner);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	close_above_stdio(keep_fd);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	return 0;
}

int
update_run_script(const struct update_cfg *u, const char *id, char *which,
    size_t whichsz, char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], name[128], ts[TM_RFC3339_LEN];
	char banner[UTIL_PATH_MAX];
	const char *p = u->scripts;
	struct stat st;

	*which = '\0';
	for (;;) {
		size_t n;
		p += strspn(p, " \t,");
		if ((n = strcspn(p, " \t,")) == 0)
			return 0;	/* none exists */
		if (n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			p += n;
		} else {
			p += n;
			continue;
		}
		if (strchr(name, '/') != NULL)
			continue;
		/* NAME.bat would be tried next where Windows runs it; on
		 * this platform only NAME.sh, through /bin/sh. */
		if (util_fmt(path, sizeof(path), "%s/%s.sh", u->app_dir,
		    name) == 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			break;
	}
	util_fmt(which, whichsz, "%s.sh", name);
	tm_rfc3339(ts, sizeof(ts), tm_now_ms());
	util_fmt(banner, sizeof(banner), "=== %s update %s: running %s\n", ts,
	    id, which);
	/* Detached so the script outlives this process and the lock
	 * descriptors never reach it. */
	switch (update_fork_detached(u->app_dir, u->log_path, banner, -1)) {
	case -1:
		util_fmt(err, errsz, "fork: %s", strerror(errno));
		return -1;
	case 0:
		setenv("MESHSYNC_UPDATE_ID", id, 1);
		execl("/bin/sh", "sh", path, (char *)NULL);
		_exit(127);
	}
	log_info("update %s: started %s", id, which);
	return 0;
}

int
update_wait_healthy(const struct update_cfg *u, const struct update_health *h,
    char *detail, size_t detailsz)
{
	uint64_t deadline;
	struct timespec ts;

	if (u->health_url[0] == '\0') {
		util_fmt(detail, detailsz, "no health_url set: not checked");
		return 2;
	}
	deadline = util_mono_us() + (uint64_t)u->health_timeout * 1000000u;
	ts.tv_sec = UPDATE_HEALTH_GRACE_MS / 1000;
	ts.tv_nsec = (UPDATE_HEALTH_GRACE_MS % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	for (;;) {
		char why[256] = "";
		if (h->check(h->arg, u->health_url, why, sizeof(why)) == 1) {
			util_fmt(detail, detailsz, "%s answered", u->health_url);
			return 1;
		}
		if (util_mono_us() >= deadline) {
			util_fmt(detail, detailsz, "health check failed: %s (%s "
			    "for %d s)", u->health_url, why, u->health_timeout);
			return 0;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = UPDATE_HEALTH_POLL_MS * 1000000L;
		nanosleep(&ts, NULL);
	}
}
