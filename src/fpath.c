/* fpath.c - path validation, ignore globs and symlink-proof open/mkdir below the instance folder. */
#include "fpath.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define FPATH_GLOB_MAX	256	/* one ignore glob */

static int fpath_openat2_on = 1;
/* Set once openat2 answered ENOSYS (old kernel) or EPERM (seccomp). */
static int fpath_openat2_missing;

static const char *const fpath_db_sidecars[] = { "", "-wal", "-shm",
    "-journal" };

void
fpath_use_openat2(int on)
{
	fpath_openat2_on = on;
}

int
fpath_check(const char *rel, char *err, size_t errsz)
{
	const char *p, *comp;
	size_t len, clen;

	if (rel == NULL || *rel == '\0') {
		util_fmt(err, errsz, "empty path");
		return -1;
	}
	len = strnlen(rel, FPATH_MAX + 1);
	if (len > FPATH_MAX) {
		util_fmt(err, errsz, "path longer than %d bytes", FPATH_MAX);
		return -1;
	}
	if (rel[0] == '/') {
		util_fmt(err, errsz, "absolute path");
		return -1;
	}
	for (p = rel; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f) {
			util_fmt(err, errsz, "control character in path");
			return -1;
		}
		if (c == '\\') {
			util_fmt(err, errsz, "backslash in path");
			return -1;
		}
	}
	for (comp = rel;; comp = p + 1) {
		p = strchr(comp, '/');
		clen = p ? (size_t)(p - comp) : strlen(comp);
		if (clen == 0) {
			util_fmt(err, errsz, "empty path component");
			return -1;
		}
		if (clen > FPATH_NAME_MAX) {
			util_fmt(err, errsz, "path component longer than %d "
			    "bytes", FPATH_NAME_MAX);
			return -1;
		}
		if ((clen == 1 && comp[0] == '.') ||
		    (clen == 2 && comp[0] == '.' && comp[1] == '.')) {
			util_fmt(err, errsz, "'.' or '..' in path");
			return -1;
		}
		if (p == NULL)
			break;
	}
	return 0;
}

/* Is rel a tracked database or one of its sidecars? */
static int
is_database(const char *rel, const char *databases)
{
	const char *w = databases, *e;
	char cand[FPATH_MAX + 16];
	size_t i, len;

	while (w != NULL && *w != '\0') {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0')
			break;
		for (e = w; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		len = (size_t)(e - w);
		/* "./app.db" in the config still means "app.db". */
		if (len > 2 && w[0] == '.' && w[1] == '/') {
			w += 2;
			len -= 2;
		}
		for (i = 0; i < sizeof(fpath_db_sidecars) /
		    sizeof(fpath_db_sidecars[0]); i++) {
			if (len >= FPATH_MAX)
				break;
			if (util_fmt(cand, sizeof(cand), "%.*s%s", (int)len, w,
			    fpath_db_sidecars[i]) == 0 && strcmp(cand, rel) == 0)
				return 1;
		}
		w = e;
	}
	return 0;
}

/* Does one glob match rel or any of its leading directories, as a whole
 * path or by the basename of each? */
static int
glob_matches(const char *glob, const char *rel)
{
	char prefix[FPATH_MAX + 1];
	const char *base, *slash;
	size_t n;

	for (n = 0;; n++) {
		if (rel[n] != '/' && rel[n] != '\0')
			continue;
		/* prefix = rel[0..n), a directory on the way or rel itself */
		memcpy(prefix, rel, n);
		prefix[n] = '\0';
		slash = strrchr(prefix, '/');
		base = slash ? slash + 1 : prefix;
		/* No FNM_PERIOD: "*.swp" must catch vim's ".name.swp". */
		if (fnmatch(glob, prefix, FNM_PATHNAME) == 0 ||
		    fnmatch(glob, base, 0) == 0)
			return 1;
		if (rel[n] == '\0')
			return 0;
	}
}

int
fpath_ignored(const char *rel, const char *patterns, const char *databases)
{
	const char *w, *e, *p;
	char glob[FPATH_GLOB_MAX];
	size_t len;

	if (strnlen(rel, FPATH_MAX + 1) > FPATH_MAX)
		return 1;
	/* A temp name as any component (a temp dir cannot exist, but a
	 * hostile manifest could name one). */
	for (p = rel;;) {
		if (strncmp(p, FPATH_TMP_PREFIX, strlen(FPATH_TMP_PREFIX)) == 0)
			return 1;
		if ((p = strchr(p, '/')) == NULL)
			break;
		p++;
	}
	if (is_database(rel, databases))
		return 1;
	for (w = patterns; w != NULL && *w != '\0'; w = e) {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0')
			break;
		for (e = w; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		len = (size_t)(e - w);
		if (len >= sizeof(glob))
			continue;	/* too long to be a sane glob: ignore it */
		memcpy(glob, w, len);
		glob[len] = '\0';
		if (glob_matches(glob, rel))
			return 1;
	}
	return 0;
}

/* openat2 with the strict resolve flags; -2 when the syscall is missing. */
static int
open_beneath2(int rootfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)(flags | O_NOFOLLOW | O_CLOEXEC);
	/* openat2 insists mode is 0 unless a file may be created. */
	if (flags & (O_CREAT | __O_TMPFILE))
		how.mode = mode & 07777;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS;
	do
		fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	while (fd == -1 && errno == EAGAIN);
	if (fd == -1 && (errno == ENOSYS || errno == EPERM ||
	    errno == E2BIG)) {
		fpath_openat2_missing = 1;
		return -2;
	}
	return (int)fd;
}

/* The fallback: one openat(O_NOFOLLOW) per component.  ".." cannot occur
 * (fpath_check), so staying below rootfd follows from refusing symlinks. */
static int
open_beneath_walk(int rootfd, const char *rel, int flags, mode_t mode)
{
	char comp[FPATH_NAME_MAX + 1];
	const char *p = rel, *slash;
	int dfd = -1, nfd, save;
	struct stat sb;
	size_t len;

	if ((dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0)) == -1)
		return -1;
	while ((slash = strchr(p, '/')) != NULL) {
		len = (size_t)(slash - p);
		memcpy(comp, p, len);
		comp[len] = '\0';
		nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd == -1) {
			save = errno;
			/* O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR;
			 * say ELOOP like openat2 does. */
			if (save == ENOTDIR && fstatat(dfd, comp, &sb,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
				save = ELOOP;
			close(dfd);
			errno = save;
			return -1;
		}
		close(dfd);
		dfd = nfd;
		p = slash + 1;
	}
	nfd = openat(dfd, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	save = errno;
	if (nfd == -1 && save == ENOTDIR && fstatat(dfd, p, &sb,
	    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
		save = ELOOP;
	close(dfd);
	errno = save;
	return nfd;
}

int
fpath_open(int rootfd, const char *rel, int flags, mode_t mode)
{
	char err[64];
	int fd;

	if (fpath_check(rel, err, sizeof(err)) == -1) {
		errno = EINVAL;
		return -1;
	}
	if (fpath_openat2_on && !fpath_openat2_missing) {
		fd = open_beneath2(rootfd, rel, flags, mode);
		/* O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR: let the
		 * walk (just as safe) tell a symlink (ELOOP) from a file. */
		if (fd != -2 && !(fd == -1 && errno == ENOTDIR))
			return fd;
	}
	return open_beneath_walk(rootfd, rel, flags, mode);
}

int
fpath_mkdirs(int rootfd, const char *rel, mode_t mode)
{
	char prefix[FPATH_MAX + 1], err[64];
	struct stat sb;
	size_t n;
	int fd;

	if (fpath_check(rel, err, sizeof(err)) == -1) {
		errno = EINVAL;
		return -1;
	}
	/* Component by component: each prefix is opened safely before the
	 * next one is made inside it, so a symlink planted anywhere stops
	 * the walk instead of redirecting the mkdir. */
	for (n = 0;; n++) {
		char base[FPATH_NAME_MAX + 1];
		int pfd;

		if (rel[n] != '/' && rel[n] != '\0')
			continue;
		memcpy(prefix, rel, n);
		prefix[n] = '\0';
		fd = fpath_open(rootfd, prefix, O_RDONLY | O_DIRECTORY, 0);
		if (fd >= 0) {
			close(fd);
		} else if (errno == ENOENT) {
			if ((pfd = fpath_open_parent(rootfd, prefix, 0, base,
			    sizeof(base))) == -1)
				return -1;
			if (mkdirat(pfd, base, mode) == -1 && errno != EEXIST) {
				int save = errno;
				close(pfd);
				errno = save;
				return -1;
			}
			/* Lost a race with another creator: only fine if
			 * what is there now is a real directory. */
			if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
			    !S_ISDIR(sb.st_mode)) {
				close(pfd);
				errno = S_ISLNK(sb.st_mode) ? ELOOP : ENOTDIR;
				return -1;
			}
			close(pfd);
		} else
			return -1;
		if (rel[n] == '\0')
			return 0;
	}
}

int
fpath_split(const char *rel, char dir[FPATH_MAX + 1], char *base,
    size_t basesz)
{
	const char *slash;
	char err[64];
	size_t dlen;

	if (fpath_check(rel, err, sizeof(err)) == -1) {
		errno = EINVAL;
		return -1;
	}
	slash = strrchr(rel, '/');
	if (util_strlcpy(base, slash ? slash + 1 : rel, basesz) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	dlen = slash ? (size_t)(slash - rel) : 0;
	memcpy(dir, rel, dlen);
	dir[dlen] = '\0';
	return 0;
}

int
fpath_open_parent(int rootfd, const char *rel, int create, char *base,
    size_t basesz)
{
	char dir[FPATH_MAX + 1];

	if (fpath_split(rel, dir, base, basesz) == -1)
		return -1;
	if (dir[0] == '\0')
		return fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (create && fpath_mkdirs(rootfd, dir, 0755) == -1)
		return -1;
	return fpath_open(rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
}

int
fpath_open_regular_at(int dfd, const char *name, struct stat *sb)
{
	struct stat probe;
	int fd;

	if (strchr(name, '/') != NULL || strcmp(name, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	/* Look before opening: opening a fifo blocks, a device may act. */
	if ((fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &probe) == -1 || !S_ISREG(probe.st_mode)) {
		int link = S_ISLNK(probe.st_mode);
		close(fd);
		errno = link ? ELOOP : EINVAL;
		return -1;
	}
	close(fd);
	if ((fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	/* Swapped for something else in between: refuse that too. */
	if (fstat(fd, sb) == -1 || !S_ISREG(sb->st_mode) ||
	    sb->st_dev != probe.st_dev || sb->st_ino != probe.st_ino) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int
fpath_open_regular(int rootfd, const char *rel, struct stat *sb)
{
	char base[FPATH_NAME_MAX + 1];
	int pfd, fd, save;

	if ((pfd = fpath_open_parent(rootfd, rel, 0, base, sizeof(base))) ==
	    -1)
		return -1;
	fd = fpath_open_regular_at(pfd, base, sb);
	save = errno;
	close(pfd);
	errno = save;
	return fd;
}

int
fpath_regular(const char *root_path, const char *rel, long long *size)
{
	struct stat sb;
	int root, fd, saved;

	if ((root = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	fd = fpath_open_regular(root, rel, &sb);
	saved = errno;
	close(root);
	if (fd == -1) {
		errno = saved;
		return -1;
	}
	close(fd);
	if (size != NULL)
		*size = (long long)sb.st_size;
	return 0;
}
