/* conf.h - the node's meshsync.conf: one table of keys, defaults and checks. */
#ifndef MESHSYNC_CONF_H
#define MESHSYNC_CONF_H

#include <stddef.h>

#include "util.h"

#define CONF_FILE	"meshsync.conf"
#define CONF_VAL_MAX	1024

/*
 * Process-wide configuration: filled once at start-up by conf_load() and
 * read-only afterwards.  Paths are absolute after loading.
 */
struct conf {
	char	 dir[UTIL_PATH_MAX];		/* node directory */
	char	 name[128];
	char	 listen[128];			/* address:port for nginx */
	char	 listen_addr[64];
	int	 listen_port;
	char	 public_url[256];
	char	 instance_dir[UTIL_PATH_MAX];
	char	 databases[CONF_VAL_MAX];	/* space-separated */
	char	 ignore[CONF_VAL_MAX];		/* space-separated globs */
	char	 timezone[64];
	int	 sync_interval;			/* seconds */
	int	 workers;			/* FastCGI pool size */
	char	 post_apply_hook[CONF_VAL_MAX];
	char	 allow_from[CONF_VAL_MAX];
	long long max_body;			/* bytes, JSON bodies */
	long long max_upload;			/* bytes, file uploads */
	int	 max_clock_skew;		/* seconds */
	int	 max_conflicts;			/* conflict copies per file */
	int	 session_idle;			/* seconds */
	int	 session_max;			/* seconds */
	char	 log_level[16];
	char	 nginx[UTIL_PATH_MAX];		/* nginx binary */
	/* Remote update (update.h). */
	char	 app_dir[UTIL_PATH_MAX];	/* "" : updates off */
	char	 preserve[CONF_VAL_MAX];	/* globs kept across updates */
	char	 post_update_scripts[CONF_VAL_MAX];
	char	 health_url[256];
	int	 health_timeout;		/* seconds */
	int	 keep_backups;
};

/* Fill c with every default (no file read).  dir is the node directory. */
void	 conf_defaults(struct conf *c, const char *dir);

/*
 * Load DIR/meshsync.conf over the defaults and check every value.
 * Returns 0, or -1 with "meshsync.conf:LINE: reason" in err.
 */
int	 conf_load(struct conf *c, const char *dir, char *err, size_t errsz);

/*
 * Set one key from a string, checking it like conf_load does (used by the
 * config page and by `init` options).  Returns 0, or -1 with a reason.
 */
int	 conf_set(struct conf *c, const char *key, const char *val, char *err,
	    size_t errsz);

/*
 * The current value of key in c as text, in the form conf_set takes (paths
 * absolute), from the key table, so a new key needs no code here.  Returns
 * 0, or -1 for an unknown key (buf "") or a value that did not fit (buf
 * truncated).
 */
int	 conf_get(const struct conf *c, const char *key, char *buf,
	    size_t bufsz);

/*
 * Render the whole configuration as a meshsync.conf text: every key with a
 * comment, set keys uncommented.  `set` is a NULL-terminated list of keys to
 * write as active lines (others are written commented with their default).
 * The caller frees the returned string; NULL on allocation failure.
 */
char	*conf_render(const struct conf *c, const char *const *set);

/*
 * Change one key in DIR/meshsync.conf on disk (crash-safe rewrite): the
 * active line is replaced, else the commented default, else a line is
 * appended; comments and other keys are kept.  The value is checked like
 * conf_set.  Returns 0, or -1 with a reason.
 */
int	 conf_update_file(const struct conf *c, const char *key,
	    const char *val, char *err, size_t errsz);

/*
 * Reload c from its meshsync.conf when the file changed since *mtime_ns
 * (0: never loaded).  A file that no longer parses is logged and ignored:
 * the running configuration stays.  Returns 1 when c was replaced, else 0.
 */
int	 conf_reload_if_changed(struct conf *c, long long *mtime_ns);

/* Path helper: DIR/rel into buf.  Returns 0, or -1 on truncation. */
int	 conf_path(const struct conf *c, char *buf, size_t bufsz,
	    const char *rel);

/* Path of the log file, the run dir and the state DB. */
#define CONF_LOG	"meshsync.log"
#define CONF_STATE_DB	"meshsync.db"
#define CONF_RUN_DIR	"run"

#endif
