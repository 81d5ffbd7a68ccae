/* fpath.h - path safety for the instance folder: validation, ignore rules, symlink-proof open/mkdir. */
#ifndef MESHSYNC_FPATH_H
#define MESHSYNC_FPATH_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * A synced path is relative to the instance folder, '/'-separated, made of
 * non-empty components that are neither "." nor "..", with no byte below
 * 0x20, no DEL and no backslash (a Windows peer or a careless join must not
 * smuggle a separator in).  Limits are bytes, not characters.
 */
#define FPATH_MAX	1024	/* whole relative path, without the NUL */
#define FPATH_NAME_MAX	255	/* one component (NAME_MAX on Linux) */

/* Prefix of every temp file meshsync creates inside the folder; such names
 * are always ignored by scans and refused in manifests. */
#define FPATH_TMP_PREFIX	".meshsync-tmp-"

/*
 * Check rel against the rules above.  Returns 0 when it is safe, or -1
 * with a short reason in err (which never echoes the path itself, so it is
 * safe to log or send back).  Pure function.
 */
int	 fpath_check(const char *rel, char *err, size_t errsz);

/*
 * True (1) when rel must never be synced as a file: its basename is a
 * meshsync temp name; or rel is one of `databases` (space-separated
 * relative paths) or its -wal, -shm or -journal sidecar; or a glob of
 * `patterns` (space-separated fnmatch(3) globs) matches the basename or
 * the whole relative path (with FNM_PATHNAME, so "*.log" is a basename
 * rule and "cache/ *" a path rule).  A glob matching a directory also
 * ignores everything below it.  Either list may be NULL.  Pure function.
 */
int	 fpath_ignored(const char *rel, const char *patterns,
	    const char *databases);

/*
 * Open rel below the directory fd rootfd without following a symlink in
 * any component (the last one included) and without leaving the root:
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or, where the kernel
 * lacks it, a walk that opens each component with O_NOFOLLOW.  flags and
 * mode are as for openat(2); O_NOFOLLOW and O_CLOEXEC are always added.
 * rel must pass fpath_check ("" is not allowed; use dup(rootfd)).
 * Returns a new fd the caller closes, or -1 with errno set (ELOOP for a
 * symlink on the way, EINVAL for a path that fails fpath_check).
 */
int	 fpath_open(int rootfd, const char *rel, int flags, mode_t mode);

/*
 * Check rel (fpath_check) and split it into its directory (dir, "" for
 * the root) and its last component (base).  0, or -1 with errno EINVAL
 * (a refused path) or ENAMETOOLONG.
 */
int	 fpath_split(const char *rel, char dir[FPATH_MAX + 1], char *base,
	    size_t basesz);

/*
 * Open the directory that holds rel's last component, as fpath_open does,
 * and copy that component into base (basesz >= FPATH_NAME_MAX + 1).  When
 * create is set, missing directories on the way are made with mode 0755
 * (fpath_mkdirs).  All later work on the entry uses the returned fd with
 * the *at() calls, so no component can be swapped for a symlink behind our
 * back.  Returns the fd (caller closes), or -1 with errno set.
 */
int	 fpath_open_parent(int rootfd, const char *rel, int create, char *base,
	    size_t basesz);

/*
 * mkdir -p of rel below rootfd, never through a symlink; existing
 * directories are kept as they are, new ones get `mode`.  Returns 0, or -1
 * with errno set (ELOOP when a component is a symlink, ENOTDIR when it is
 * a file).
 */
int	 fpath_mkdirs(int rootfd, const char *rel, mode_t mode);

/*
 * Tests only: 0 forces the per-component fallback even when openat2 is
 * available, 1 (the default) uses openat2 when the kernel has it.
 */
void	 fpath_use_openat2(int on);

/*
 * Open rel beneath rootfd for reading if it is a regular file reached
 * without symlinks; anything else (fifo, device, socket, directory) is
 * looked at with O_PATH and never opened.  Fills *sb.  Returns the fd, or
 * -1 with errno set (EINVAL for something not a regular file).
 */
int	 fpath_open_regular(int rootfd, const char *rel, struct stat *sb);

/* The same for name (one component, no symlink) in the directory dfd. */
int	 fpath_open_regular_at(int dfd, const char *name, struct stat *sb);

/*
 * Is rel, beneath the directory root_path, a regular file reached without
 * any symlink?  For routes that let nginx serve a file after checking it.
 * Returns 0 and fills *size (may be NULL), or -1 with errno set (ENOENT,
 * ELOOP for a symlink, EISDIR/EINVAL for something not a regular file).
 */
int	 fpath_regular(const char *root_path, const char *rel, long long *size);

#endif
