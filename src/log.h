/* log.h - levelled logging to the node's log file, with client text scrubbed. */
#ifndef MESHSYNC_LOG_H
#define MESHSYNC_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/*
 * Open the log: messages go to `path` (appended, created 0600) when it is
 * not NULL, otherwise to stderr.  `tag` names the process ("fcgi", "worker")
 * in every line.  Safe to call again after fork to re-tag.  Returns 0, or -1
 * when the file cannot be opened (logging then falls back to stderr).
 */
int	 log_open(const char *path, const char *tag, enum log_level level);
void	 log_close(void);
/* Also copy each line to stderr (the foreground `up` wants to see them). */
void	 log_set_stderr(int on);

void	 log_msg(enum log_level, const char *func, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#define log_err(...)   log_msg(LOG_LVL_ERROR, __func__, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __func__, __VA_ARGS__)

/*
 * Copy client-supplied text into dst (always NUL-terminated), replacing
 * every byte that is not printable ASCII with '?', and truncating to dstsz.
 * Returns dst, so it can be used inline in a log call.
 */
char	*log_scrub(char *dst, size_t dstsz, const char *src);

#endif
