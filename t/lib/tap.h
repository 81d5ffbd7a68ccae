/* tap.h - a tiny TAP emitter for the C unit tests. */
#ifndef MESHSYNC_TAP_H
#define MESHSYNC_TAP_H

/* Print "ok N - name" or "not ok N - name"; returns cond. */
int	 tap_ok(int cond, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Compare two strings (NULL-safe); prints both on failure. */
int	 tap_is_str(const char *got, const char *want, const char *name);
/* Compare two integers; prints both on failure. */
int	 tap_is_int(long long got, long long want, const char *name);
void	 tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	 tap_skip(const char *why);
/* Print the plan "1..N" and return 0 if every test passed, 1 otherwise. */
int	 tap_done(void);

#endif
