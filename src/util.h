/* util.h - small bounded-string, number and file helpers shared by every layer. */
#ifndef MESHSYNC_UTIL_H
#define MESHSYNC_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UTIL_PATH_MAX 1024

/* Copy src into dst (size dstsz), always NUL-terminated.  Returns -1 when
 * src did not fit (dst then holds a truncated copy), 0 otherwise. */
int	 util_strlcpy(char *dst, const char *src, size_t dstsz);

/* snprintf into dst that returns -1 on truncation or error, 0 otherwise. */
int	 util_fmt(char *dst, size_t dstsz, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Is s (may be NULL) exactly len lowercase hex digits? */
int	 util_is_hex(const char *s, size_t len);

/*
 * The next item of a list separated by spaces, tabs or commas (settings
 * such as "app.db, audit.db"), copied into item; returns where the rest
 * of the list starts, or NULL when no item is left.  Items too long for
 * item are skipped.
 */
const char *util_list_next(const char *p, char *item, size_t itemsz);

/*
 * Work run beside the caller's own: util_bg_run starts fn(arg) on a thread
 * of its own, util_bg_wait waits for it.  When no thread can be made, fn
 * runs inside util_bg_wait instead: done exactly once, either way.
 */
struct util_bg {
	void		*(*fn)(void *);
	void		*arg;
	pthread_t	 th;
	int		 threaded;
};
void	 util_bg_run(struct util_bg *b, void *(*fn)(void *), void *arg);
void	 util_bg_wait(struct util_bg *b);

/* Parse a decimal integer in [min, max].  Returns 0 and fills *out, or -1
 * with a short reason in *errstr ("invalid", "too small", "too large"). */
int	 util_strtonum(const char *s, long long min, long long max,
	    long long *out, const char **errstr);

/*
 * Write len bytes to path crash-safely: a temp file in the same directory,
 * fsync, rename over path, fsync of the directory.  A reader sees either the
 * old content or the new, never a mix.  Returns 0, or -1 with errno set.
 */
int	 util_write_file_atomic(const char *path, const void *buf, size_t len,
	    mode_t mode);

/* fsync the directory holding path ("." for a bare name), so a rename,
 * create or unlink in it survives a crash.  Returns 0, or -1 with errno
 * set. */
int	 util_fsync_parent(const char *path);

/* Read a whole (small) file; at most maxlen bytes.  The caller frees *out,
 * which is NUL-terminated; *outlen (may be NULL) gets the length.
 * Returns 0, or -1 with errno set (EFBIG when over maxlen). */
int	 util_read_file(const char *path, size_t maxlen, char **out,
	    size_t *outlen);

/* mkdir -p with mode for every created component.  Returns 0 or -1. */
int	 util_mkdirs(const char *path, mode_t mode);

/* Remove a tree (no symlink following).  Returns 0 or -1. */
int	 util_rmtree(const char *path);

/* Fill buf with n random bytes as 2n lowercase hex digits + NUL
 * (bufsz must be at least 2n + 1).  Uses libsodium's CSPRNG. */
void	 util_random_hex(char *buf, size_t bufsz, size_t n);

/* Lowercase hex of len bytes into out (outsz >= 2 len + 1). */
void	 util_hex(char *out, size_t outsz, const unsigned char *in,
	    size_t len);

/* Absolute path of the running meshsync executable, for re-exec of
 * subcommands.  Returns 0, or -1 when /proc/self/exe is unreadable. */
int	 util_self_exe(char *buf, size_t bufsz);

/*
 * Percent-encode s into dst for a URL: unreserved characters stay, '/'
 * too when keep_slash is set, every other byte becomes %XX.  Returns 0, or
 * -1 when it does not fit.
 */
int	 util_urlencode(char *dst, size_t dstsz, const char *s, int keep_slash);

/* Monotonic clock in microseconds (for durations, never for timestamps). */
uint64_t util_mono_us(void);

#endif
