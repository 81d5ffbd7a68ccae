/* conf.c - parse and check meshsync.conf against one table of keys. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tm.h"

enum conf_kind {
	CK_STR,		/* free text, one line */
	CK_INT,		/* integer in [min, max] */
	CK_PATH,	/* relative paths resolve against the node dir */
	CK_LISTEN,	/* address:port */
	CK_URL,		/* http(s)://... or empty */
	CK_TZ,		/* IANA zone name */
	CK_LEVEL,	/* log level name */
};

struct conf_key {
	const char	*key;
	enum conf_kind	 kind;
	size_t		 off;		/* offset in struct conf */
	size_t		 size;		/* for strings */
	long long	 min, max;	/* for integers */
	const char	*help;
};

#define STR(f)	offsetof(struct conf, f), sizeof(((struct conf *)0)->f)
#define NUM(f)	offsetof(struct conf, f), 0

static const struct conf_key conf_keys[] = {
	{ .key = "name", .kind = CK_STR, STR(name),
	  .help = "Display name of this node (default: the host name)" },
	{ .key = "listen", .kind = CK_LISTEN, STR(listen),
	  .help = "address:port nginx listens on" },
	{ .key = "public_url", .kind = CK_URL, STR(public_url),
	  .help = "URL peers use to reach this node (default: http://LISTEN)" },
	{ .key = "instance_dir", .kind = CK_PATH, STR(instance_dir),
	  .help = "The synced instance folder (relative to the node dir)" },
	{ .key = "databases", .kind = CK_STR, STR(databases),
	  .help = "SQLite files in the instance folder whose tracked tables sync row by row (space-separated)" },
	{ .key = "ignore", .kind = CK_STR, STR(ignore),
	  .help = "Glob patterns never synced as files (space-separated)" },
	{ .key = "timezone", .kind = CK_TZ, STR(timezone),
	  .help = "IANA zone for display and day boundaries (default: $TZ, else UTC)" },
	{ .key = "sync_interval", .kind = CK_INT, NUM(sync_interval),
	  .min = 1, .max = 86400,
	  .help = "Seconds between periodic syncs with every peer" },
	{ .key = "workers", .kind = CK_INT, NUM(workers), .min = 1, .max = 256,
	  .help = "FastCGI pool workers (default: 2 x cores)" },
	{ .key = "post_apply_hook", .kind = CK_STR, STR(post_apply_hook),
	  .help = "Command run after received changes are applied" },
	{ .key = "allow_from", .kind = CK_STR, STR(allow_from),
	  .help = "Addresses/CIDRs peer requests must come from (empty: any)" },
	{ .key = "max_body", .kind = CK_INT, NUM(max_body),
	  .min = 1024, .max = 1LL << 30,
	  .help = "Largest JSON request body in bytes" },
	{ .key = "max_upload", .kind = CK_INT, NUM(max_upload),
	  .min = 1024, .max = 1LL << 40,
	  .help = "Largest uploaded file in bytes" },
	{ .key = "max_clock_skew", .kind = CK_INT, NUM(max_clock_skew),
	  .min = 1, .max = 86400,
	  .help = "Seconds a peer's clock may run ahead before its batch is refused" },
	{ .key = "max_conflicts", .kind = CK_INT, NUM(max_conflicts),
	  .min = 1, .max = 1000,
	  .help = "Conflict copies kept per file (the oldest beyond go)" },
	{ .key = "session_idle", .kind = CK_INT, NUM(session_idle),
	  .min = 1, .max = 30 * 86400,
	  .help = "Seconds a dashboard session may sit unused before it ends" },
	{ .key = "session_max", .kind = CK_INT, NUM(session_max),
	  .min = 1, .max = 365 * 86400,
	  .help = "Seconds after login a session ends regardless of use" },
	{ .key = "log_level", .kind = CK_LEVEL, STR(log_level),
	  .help = "error, warn, info or debug" },
	{ .key = "nginx", .kind = CK_STR, STR(nginx),
	  .help = "nginx binary (default: found in PATH or /usr/sbin)" },
	{ .key = "app_dir", .kind = CK_PATH, STR(app_dir),
	  .help = "The application's code tree that remote updates replace (unset: updates off)" },
	{ .key = "preserve", .kind = CK_STR, STR(preserve),
	  .help = "Globs kept across updates besides the instance folder and node dir (space-separated)" },
	{ .key = "post_update_scripts", .kind = CK_STR, STR(post_update_scripts),
	  .help = "Scripts tried after an update, first existing runs (NAME.sh; NAME.bat on Windows)" },
	{ .key = "health_url", .kind = CK_URL, STR(health_url),
	  .help = "URL polled after an update; no 2xx within health_timeout rolls back (unset: not checked)" },
	{ .key = "health_timeout", .kind = CK_INT, NUM(health_timeout),
	  .min = 1, .max = 3600,
	  .help = "Seconds health_url has to answer 2xx after an update" },
	{ .key = "keep_backups", .kind = CK_INT, NUM(keep_backups),
	  .min = 1, .max = 100,
	  .help = "Application backups kept in the node dir's backups/" },
};

#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

static const struct conf_key *
conf_find(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(conf_keys[i].key, key) == 0)
			return &conf_keys[i];
	return NULL;
}

void
conf_defaults(struct conf *c, const char *dir)
{
	const char *tz = getenv("TZ");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	char host[64];

	memset(c, 0, sizeof(*c));
	util_strlcpy(c->dir, dir, sizeof(c->dir));
	if (gethostname(host, sizeof(host)) == -1)
		util_strlcpy(host, "meshsync", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	util_strlcpy(c->name, host, sizeof(c->name));
	util_strlcpy(c->listen, "127.0.0.1:8080", sizeof(c->listen));
	util_strlcpy(c->listen_addr, "127.0.0.1", sizeof(c->listen_addr));
	c->listen_port = 8080;
	util_fmt(c->instance_dir, sizeof(c->instance_dir), "%s/instance", dir);
	util_strlcpy(c->ignore, "*.swp *.swx *~ .#* .DS_Store .meshsync-tmp-*",
	    sizeof(c->ignore));
	/* A TZ of ":Europe/Paris" or a POSIX rule is not an IANA name. */
	if (tz != NULL && tm_zone_valid(tz))
		util_strlcpy(c->timezone, tz, sizeof(c->timezone));
	else
		util_strlcpy(c->timezone, "UTC", sizeof(c->timezone));
	c->sync_interval = 30;
	c->workers = cores > 0 ? (int)(2 * cores) : 2;
	if (c->workers > 256)
		c->workers = 256;
	c->max_body = 8LL << 20;
	c->max_upload = 4LL << 30;
	c->max_clock_skew = 60;
	c->max_conflicts = 10;
	c->session_idle = 8 * 3600;
	c->session_max = 7 * 86400;
	util_strlcpy(c->log_level, "info", sizeof(c->log_level));
	util_strlcpy(c->preserve, ".git *.db *.db-wal *.db-shm *.db-journal",
	    sizeof(c->preserve));
	util_strlcpy(c->post_update_scripts, "run_production start_server run",
	    sizeof(c->post_update_scripts));
	c->health_timeout = 30;
	c->keep_backups = 3;
}

static int
check_listen(struct conf *c, const char *val, char *err, size_t errsz)
{
	const char *colon = strrchr(val, ':'), *es;
	long long port;

	if (colon == NULL || colon == val ||
	    (size_t)(colon - val) >= sizeof(c->listen_addr)) {
		util_fmt(err, errsz, "listen: want address:port, got '%s'", val);
		return -1;
	}
	if (util_strtonum(colon + 1, 1, 65535, &port, &es) == -1) {
		util_fmt(err, errsz, "listen: port is %s", es);
		return -1;
	}
	memcpy(c->listen_addr, val, (size_t)(colon - val));
	c->listen_addr[colon - val] = '\0';
	for (const char *p = c->listen_addr; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
		    *p != '[' && *p != ']' && *p != ':') {
			util_fmt(err, errsz, "listen: bad address");
			return -1;
		}
	c->listen_port = (int)port;
	return 0;
}

int
conf_set(struct conf *c, const char *key, const char *val, char *err,
    size_t errsz)
{
	const struct conf_key *k = conf_find(key);
	char *field;
	const char *es;
	long long n;

	if (k == NULL) {
		util_fmt(err, errsz, "unknown key '%s'", key);
		return -1;
	}
	for (const char *p = val; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20) {
			util_fmt(err, errsz, "%s: control characters", key);
			return -1;
		}
	field = (char *)c + k->off;
	switch (k->kind) {
	case CK_INT:
		if (util_strtonum(val, k->min, k->max, &n, &es) == -1) {
			util_fmt(err, errsz, "%s: value is %s (%lld..%lld)",
			    key, es, k->min, k->max);
			return -1;
		}
		if (k->off == offsetof(struct conf, max_body) ||
		    k->off == offsetof(struct conf, max_upload))
			*(long long *)(void *)field = n;
		else
			*(int *)(void *)field = (int)n;
		return 0;
	case CK_LISTEN:
		if (check_listen(c, val, err, errsz) == -1)
			return -1;
		break;
	case CK_URL:
		if (*val != '\0' && strncmp(val, "http://", 7) != 0 &&
		    strncmp(val, "https://", 8) != 0) {
			util_fmt(err, errsz, "%s: must start with http:// or "
			    "https://", key);
			return -1;
		}
		break;
	case CK_TZ:
		if (!tm_zone_valid(val)) {
			util_fmt(err, errsz, "timezone: unknown zone '%s'", val);
			return -1;
		}
		break;
	case CK_LEVEL:
		if (strcmp(val, "error") != 0 && strcmp(val, "warn") != 0 &&
		    strcmp(val, "info") != 0 && strcmp(val, "debug") != 0) {
			util_fmt(err, errsz, "log_level: want error, warn, "
			    "info or debug");
			return -1;
		}
		break;
	case CK_PATH:
		if (*val == '\0') {
			util_fmt(err, errsz, "%s: empty path", key);
			return -1;
		}
		if (*val != '/') {
			if (util_fmt(field, k->size, "%s/%s", c->dir, val) == -1)
				goto toolong;
			return 0;
		}
		break;
	case CK_STR:
		break;
	}
	if (util_strlcpy(field, val, k->size) == -1)
		goto toolong;
	return 0;
toolong:
	util_fmt(err, errsz, "%s: value too long", key);
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
conf_load(struct conf *c, const char *dir, char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], why[256];
	char *text = NULL, *line, *save = NULL;
	int lineno = 0;

	conf_defaults(c, dir);
	if (conf_path(c, path, sizeof(path), CONF_FILE) == -1) {
		util_fmt(err, errsz, "node directory path too long");
		return -1;
	}
	if (util_read_file(path, 1 << 20, &text, NULL) == -1) {
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *eq, *key, *val;

		lineno++;
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (eq == NULL) {
			util_fmt(err, errsz, "%s:%d: want key = value", path,
			    lineno);
			goto fail;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (conf_set(c, key, val, why, sizeof(why)) == -1) {
			util_fmt(err, errsz, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	free(text);
	if (c->public_url[0] == '\0')
		util_fmt(c->public_url, sizeof(c->public_url), "http://%s",
		    c->listen);
	return 0;
fail:
	free(text);
	return -1;
}

static int
conf_value(const struct conf *c, const struct conf_key *k, char *buf,
    size_t bufsz)
{
	const char *field = (const char *)c + k->off;

	if (k->kind == CK_INT) {
		if (k->off == offsetof(struct conf, max_body) ||
		    k->off == offsetof(struct conf, max_upload))
			return util_fmt(buf, bufsz, "%lld",
			    *(const long long *)(const void *)field);
		return util_fmt(buf, bufsz, "%d",
		    *(const int *)(const void *)field);
	}
	return util_strlcpy(buf, field, bufsz);
}

int
conf_get(const struct conf *c, const char *key, char *buf, size_t bufsz)
{
	const struct conf_key *k = conf_find(key);

	if (k == NULL) {
		if (bufsz > 0)
			*buf = '\0';
		return -1;
	}
	return conf_value(c, k, buf, bufsz);
}

char *
conf_render(const struct conf *c, const char *const *set)
{
	size_t cap = 8192, len = 0;
	char *out = malloc(cap), val[CONF_VAL_MAX];

	if (out == NULL)
		return NULL;
	len = (size_t)snprintf(out, cap,
	    "# meshsync node configuration: key = value, '#' starts a comment.\n"
	    "# Every key has a default; uncomment a line to change it.\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		int active = 0;
		int n;

		for (size_t j = 0; set != NULL && set[j] != NULL; j++)
			if (strcmp(set[j], k->key) == 0)
				active = 1;
		conf_value(c, k, val, sizeof(val));
		/* Paths under the node dir are written relative so the node
		 * directory can be moved as a whole. */
		if (k->kind == CK_PATH) {
			size_t dl = strlen(c->dir);
			if (strncmp(val, c->dir, dl) == 0 && val[dl] == '/')
				memmove(val, val + dl + 1, strlen(val + dl + 1) + 1);
		}
		for (;;) {
			n = snprintf(out + len, cap - len, "\n# %s\n%s%s = %s\n",
			    k->help, active ? "" : "# ", k->key, val);
			if (n < 0) {
				free(out);
				return NULL;
			}
			if ((size_t)n < cap - len)
				break;
			cap *= 2;
			char *grown = realloc(out, cap);
			if (grown == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
		}
		len += (size_t)n;
	}
	return out;
}

int
conf_path(const struct conf *c, char *buf, size_t bufsz, const char *rel)
{
	return util_fmt(buf, bufsz, "%s/%s", c->dir, rel);
}

/* The line setting key in text ("key = v", or "# key = v" when commented
 * is set), or NULL; *end gets the start of the next line. */
static const char *
key_line(const char *text, const char *key, int commented, const char **end)
{
	size_t klen = strlen(key);

	for (const char *line = text; *line != '\0'; line = *end) {
		const char *p = line, *nl = strchr(line, '\n');

		*end = nl ? nl + 1 : line + strlen(line);
		while (*p == ' ' || *p == '\t')
			p++;
		if ((*p == '#') != commented)
			continue;
		if (commented)
			for (p++; *p == ' '; p++)
				;
		if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' ||
		    p[klen] == '=' || p[klen] == '\t'))
			return line;
	}
	return NULL;
}

int
conf_update_file(const struct conf *c, const char *key, const char *val,
    char *err, size_t errsz)
{
	char path[UTIL_PATH_MAX], *text = NULL, *out = NULL;
	struct conf check = *c;
	const char *hit, *hit_end = NULL;
	size_t len, cap, o;
	int rc = -1;

	if (conf_set(&check, key, val, err, errsz) == -1)
		return -1;
	conf_path(c, path, sizeof(path), CONF_FILE);
	if (util_read_file(path, 1 << 20, &text, &len) == -1) {
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* The active line wins over the commented default. */
	if ((hit = key_line(text, key, 0, &hit_end)) == NULL)
		hit = key_line(text, key, 1, &hit_end);
	cap = len + strlen(key) + strlen(val) + 16;
	if ((out = malloc(cap)) == NULL) {
		util_fmt(err, errsz, "out of memory");
		goto done;
	}
	o = hit != NULL ? (size_t)(hit - text) : len;
	memcpy(out, text, o);
	if (hit == NULL && o > 0 && out[o - 1] != '\n')
		out[o++] = '\n';
	o += (size_t)snprintf(out + o, cap - o, "%s = %s\n", key, val);
	if (hit != NULL) {
		size_t rest = len - (size_t)(hit_end - text);
		memcpy(out + o, hit_end, rest);
		o += rest;
	}
	if (util_write_file_atomic(path, out, o, 0644) == -1) {
		util_fmt(err, errsz, "%s: %s", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(text);
	free(out);
	return rc;
}

int
conf_reload_if_changed(struct conf *c, long long *mtime_ns)
{
	char path[UTIL_PATH_MAX], err[UTIL_PATH_MAX + 128];
	struct conf next;
	struct stat st;
	long long m;

	conf_path(c, path, sizeof(path), CONF_FILE);
	if (stat(path, &st) == -1)
		return 0;
	m = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	if (m == *mtime_ns)
		return 0;
	if (*mtime_ns == 0) {
		*mtime_ns = m;
		return 0;
	}
	*mtime_ns = m;
	if (conf_load(&next, c->dir, err, sizeof(err)) == -1) {
		log_warnx("keeping the running configuration: %s", err);
		return 0;
	}
	*c = next;
	log_info("configuration reloaded");
	return 1;
}
