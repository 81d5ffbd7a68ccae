/* cmd_common.c - what every subcommand does first: find the node, load its config, open its state. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "update.h"
#include "util.h"

#include <sodium.h>

static enum log_level
level_of(const char *name)
{
	if (strcmp(name, "error") == 0)
		return LOG_LVL_ERROR;
	if (strcmp(name, "warn") == 0)
		return LOG_LVL_WARN;
	if (strcmp(name, "debug") == 0)
		return LOG_LVL_DEBUG;
	return LOG_LVL_INFO;
}

/*
 * The node directory is missing or has no config: when it lies inside the
 * application tree, a crash mid-update can leave it inside a stage.  The
 * journal beside the tree says where; run it (update.h).  Returns 1 when
 * something was recovered.
 */
static int
recover_orphan(const char *dir)
{
	char abs[UTIL_PATH_MAX], cwd[UTIL_PATH_MAX], detail[512];
	int rc;

	if (*dir == '/')
		util_strlcpy(abs, dir, sizeof(abs));
	else if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    util_fmt(abs, sizeof(abs), "%s/%s", cwd, dir) == -1)
		return 0;
	rc = update_recover_orphan(abs, detail, sizeof(detail));
	if (rc == 1)
		fprintf(stderr, "meshsync: %s\n", detail);
	else if (rc == -1)
		fprintf(stderr, "meshsync: an interrupted update could not be "
		    "recovered: %s\n", detail);
	return rc == 1;
}

int
cmd_load(struct conf *c, const char *dir, const char *tag)
{
	char abs[UTIL_PATH_MAX], err[UTIL_PATH_MAX + 128], cf[UTIL_PATH_MAX];
	char logp[UTIL_PATH_MAX];

	if (realpath(dir, abs) == NULL && (!recover_orphan(dir) ||
	    realpath(dir, abs) == NULL)) {
		fprintf(stderr, "meshsync: %s: %s (create a node with "
		    "`meshsync init --dir %s`)\n", dir, strerror(errno), dir);
		return -1;
	}
	util_fmt(cf, sizeof(cf), "%s/%s", abs, CONF_FILE);
	if (access(cf, F_OK) == -1)
		recover_orphan(abs);
	if (access(cf, F_OK) == -1) {
		fprintf(stderr, "meshsync: %s is not a meshsync node (no %s); "
		    "create one with `meshsync init --dir %s`\n", dir,
		    CONF_FILE, dir);
		return -1;
	}
	if (conf_load(c, abs, err, sizeof(err)) == -1) {
		fprintf(stderr, "meshsync: %s\n", err);
		return -1;
	}
	util_fmt(logp, sizeof(logp), "%s/%s", abs, CONF_LOG);
	if (log_open(logp, tag, level_of(c->log_level)) == -1)
		fprintf(stderr, "meshsync: cannot open %s: %s\n", logp,
		    strerror(errno));
	return 0;
}

int
cmd_open_state(struct conf *c, const char *dir, const char *tag,
    sqlite3 **db, struct store_identity *id)
{
	char path[UTIL_PATH_MAX], err[512];

	if (cmd_load(c, dir, tag) == -1)
		return -1;
	conf_path(c, path, sizeof(path), CONF_STATE_DB);
	if (store_open(path, 0, db, err, sizeof(err)) == -1) {
		fprintf(stderr, "meshsync: %s\n", err);
		return -1;
	}
	if (id != NULL && store_identity_load(*db, id) == -1) {
		fprintf(stderr, "meshsync: %s has no node identity\n", path);
		sqlite3_close(*db);
		*db = NULL;
		return -1;
	}
	return 0;
}

int
cmd_read_secret(const char *file, char *buf, size_t bufsz)
{
	char *text = NULL;
	int rc;

	if (strcmp(file, "-") == 0) {
		if (fgets(buf, (int)bufsz, stdin) == NULL)
			return -1;
		buf[strcspn(buf, "\r\n")] = '\0';
		return 0;
	}
	if (util_read_file(file, 4096, &text, NULL) == -1)
		return -1;
	text[strcspn(text, "\r\n")] = '\0';
	rc = util_strlcpy(buf, text, bufsz);
	sodium_memzero(text, strlen(text));
	free(text);
	return rc;
}
