/* cmd_track.c - `meshsync track|untrack`: capture triggers on application tables. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "dbsync.h"
#include "hlc.h"
#include "sync.h"
#include "tm.h"
#include "util.h"
#include "wake.h"

/* A database name is a plain relative path inside the instance folder. */
static int
db_name_ok(const char *db)
{
	if (*db == '\0' || *db == '/' || strstr(db, "..") != NULL ||
	    strpbrk(db, " \t,\n\\") != NULL)
		return 0;
	return 1;
}

static int
record(sqlite3 *state, const char *db, const char *tbl, int immediate,
    int track)
{
	char now[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	int rc = -1;

	tm_rfc3339_s(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(state, track ? "INSERT INTO tracked(db, tbl, "
	    "immediate, since) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(db, tbl) DO "
	    "UPDATE SET immediate = excluded.immediate" : "DELETE FROM tracked "
	    "WHERE db = ?1 AND tbl = ?2 AND ?3 + length(?4) >= 0", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, db, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tbl, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, immediate);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

static int
run(int argc, char **argv, int track)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "immediate", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *db;
	char path[UTIL_PATH_MAX], err[512], list[CONF_VAL_MAX];
	struct store_identity id;
	struct conf c;
	struct stat st;
	sqlite3 *state = NULL, *app = NULL;
	int ch, immediate = 0, rc = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'i' && track)
			immediate = 1;
		else
			return cmd_usage(cmd_find(track ? "track" : "untrack"), 1);
	}
	if (argc - optind < 2)
		return cmd_usage(cmd_find(track ? "track" : "untrack"), 1);
	db = argv[optind];
	if (!db_name_ok(db)) {
		fprintf(stderr, "meshsync: '%s' must be a path inside the "
		    "instance folder, without '..' or spaces\n", db);
		return 1;
	}
	if (cmd_open_state(&c, dir, "track", &state, &id) == -1)
		return 1;
	util_fmt(path, sizeof(path), "%s/%s", c.instance_dir, db);
	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "meshsync: no database %s in the instance "
		    "folder (%s)\n", db, path);
		goto done;
	}
	if (dbsync_open(path, &app, err, sizeof(err)) == -1)
		goto fail;
	for (int i = optind + 1; i < argc; i++) {
		int r = track ?
		    dbsync_track(app, id.node_id, argv[i], hlc_now_ms(), err,
		    sizeof(err)) :
		    dbsync_untrack(app, id.node_id, argv[i], hlc_now_ms(), err,
		    sizeof(err));
		if (r == -1)
			goto fail;
		record(state, db, argv[i], immediate, track);
		printf("%s %s in %s%s\n", track ? "tracking" : "no longer "
		    "tracking", argv[i], db, immediate ? " (immediate)" : "");
	}
	/* A tracked database must be in `databases` to sync at all. */
	if (track && sync_db_path(&c, db, path, sizeof(path)) == -1) {
		if (util_fmt(list, sizeof(list), "%s%s%s", c.databases,
		    *c.databases ? " " : "", db) == -1 ||
		    conf_update_file(&c, "databases", list, err,
		    sizeof(err)) == -1)
			goto fail;
		printf("added %s to databases in meshsync.conf\n", db);
	}
	/* A running worker starts (or stops) watching at once. */
	wake_send(&c, "config");
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "meshsync: %s\n", err);
done:
	sqlite3_close(app);
	sqlite3_close(state);
	return rc;
}

int
cmd_track(int argc, char **argv)
{
	return run(argc, argv, 1);
}

int
cmd_untrack(int argc, char **argv)
{
	return run(argc, argv, 0);
}
