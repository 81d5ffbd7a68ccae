/* log.c - one line per event, "TIME LEVEL tag[pid] func: message". */
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static int log_also_stderr;
static char log_tag[16] = "meshsync";
static enum log_level log_max = LOG_LVL_INFO;

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

int
log_open(const char *path, const char *tag, enum log_level level)
{
	int fd;

	if (tag != NULL)
		snprintf(log_tag, sizeof(log_tag), "%s", tag);
	log_max = level;
	if (path == NULL)
		return 0;
	/* O_APPEND keeps lines from many processes whole (each is one write). */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (log_fd != -1)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void
log_close(void)
{
	if (log_fd != -1)
		close(log_fd);
	log_fd = -1;
}

void
log_set_stderr(int on)
{
	log_also_stderr = on;
}

char *
log_scrub(char *dst, size_t dstsz, const char *src)
{
	size_t i;

	if (dstsz == 0)
		return dst;
	if (src == NULL)
		src = "(null)";
	for (i = 0; i + 1 < dstsz && src[i] != '\0'; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
	return dst;
}

void
log_msg(enum log_level lvl, const char *func, const char *fmt, ...)
{
	char line[2048], msg[1536];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Newlines in a message would forge log lines: flatten them. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%ld] %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log_names[lvl],
	    log_tag, (long)getpid(), func, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (log_fd != -1) {
		if (write(log_fd, line, (size_t)n) < 0) {
			/* Nowhere better to report it. */
		}
	}
	if (log_fd == -1 || log_also_stderr) {
		if (write(STDERR_FILENO, line, (size_t)n) < 0) {
			/* Nowhere better to report it. */
		}
	}
}
