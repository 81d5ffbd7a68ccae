/* cmd_update.c - `meshsync update push|status|rollback` (and `apply`, which the pool starts). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "node.h"
#include "update.h"
#include "updaterun.h"
#include "util.h"

#define PUSH_WAIT_EXTRA_S	300	/* beyond health_timeout */

static const struct cmd *
me(void)
{
	return cmd_find("update");
}

/*
 * Print every step each target reports (from the activity log, so steps
 * that follow each other quickly are all shown) until every one is final.
 * Returns 0 when all ended healthy (or done), else 1.
 */
static int
wait_final(sqlite3 *db, json_object *peers, int timeout_s)
{
	size_t n = json_object_array_length(peers);
	int64_t deadline = (int64_t)time(NULL) + timeout_s;
	long long seen = 0;
	int bad = 0;

	for (;;) {
		sqlite3_stmt *st = NULL;
		size_t open = 0;

		/* New steps of any of our updates, in the order they came. */
		if (sqlite3_prepare_v2(db, "SELECT id, message FROM events "
		    "WHERE kind = 'update' AND id > ? ORDER BY id", -1, &st,
		    NULL) != SQLITE_OK)
			return 1;
		sqlite3_bind_int64(st, 1, seen);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *m = (const char *)sqlite3_column_text(st, 1);
			seen = sqlite3_column_int64(st, 0);
			for (size_t i = 0; i < n; i++) {
				json_object *p = json_object_array_get_idx(peers,
				    i), *u, *name;
				char head[64];
				json_object_object_get_ex(p, "update", &u);
				json_object_object_get_ex(p, "peer", &name);
				util_fmt(head, sizeof(head), "update %.8s (sent): ",
				    json_object_get_string(u));
				if (strncmp(m, head, strlen(head)) == 0)
					printf("%s: %s\n",
					    json_object_get_string(name),
					    m + strlen(head));
			}
		}
		sqlite3_finalize(st);
		fflush(stdout);
		for (size_t i = 0; i < n; i++) {
			json_object *p = json_object_array_get_idx(peers, i), *v;
			json_object_object_get_ex(p, "ok", &v);
			if (!json_object_get_boolean(v)) {
				bad = 1;
				continue;
			}
			json_object_object_get_ex(p, "update", &v);
			if (sqlite3_prepare_v2(db, "SELECT final, state IN "
			    "('healthy', 'done') FROM updates WHERE id = ? AND "
			    "role = 'origin'", -1, &st, NULL) != SQLITE_OK)
				return 1;
			sqlite3_bind_text(st, 1, json_object_get_string(v), -1,
			    SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW) {
				if (!sqlite3_column_int(st, 0))
					open++;
				else if (!sqlite3_column_int(st, 1))
					bad = 1;
			}
			sqlite3_finalize(st);
		}
		if (open == 0)
			break;
		if ((int64_t)time(NULL) > deadline) {
			printf("still not finished after %d s: see `meshsync "
			    "update status`\n", timeout_s);
			return 1;
		}
		{
			struct timespec ts = { 0, 200 * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return bad;
}

static int
push(const char *dir, const char *sel, int nowait)
{
	struct store_identity id;
	struct conf c;
	sqlite3 *db = NULL;
	json_object *out = NULL, *peers, *v;
	char err[1024];
	int rc, status = 0;

	if (cmd_open_state(&c, dir, "update", &db, &id) == -1)
		return 1;
	if (!node_port_ready(&c)) {
		fprintf(stderr, "meshsync update: this node is not running: "
		    "start it with `meshsync up --dir %s` so peers can fetch "
		    "the release\n", dir);
		sqlite3_close(db);
		return 1;
	}
	rc = updaterun_push(db, &c, &id, sel, "cli", &out, err, sizeof(err));
	if (out == NULL) {
		fprintf(stderr, "meshsync update: %s\n", err);
		sqlite3_close(db);
		return 1;
	}
	json_object_object_get_ex(out, "peers", &peers);
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		json_object *p = json_object_array_get_idx(peers, i), *e, *n;
		json_object_object_get_ex(p, "peer", &n);
		if (json_object_object_get_ex(p, "error", &e)) {
			fprintf(stderr, "%s: refused: %s\n",
			    json_object_get_string(n), json_object_get_string(e));
			status = 1;
		} else {
			json_object_object_get_ex(p, "update", &e);
			printf("%s: accepted update %s\n",
			    json_object_get_string(n), json_object_get_string(e));
		}
	}
	fflush(stdout);
	json_object_object_get_ex(out, "release", &v);
	if (!nowait && wait_final(db, peers, c.health_timeout +
	    PUSH_WAIT_EXTRA_S) != 0)
		status = 1;
	(void)rc;
	json_object_put(out);
	sqlite3_close(db);
	return status;
}

static int
status_cmd(const char *dir, int as_json)
{
	struct store_identity id;
	struct conf c;
	sqlite3 *db = NULL;
	json_object *o, *arr, *v;

	if (cmd_open_state(&c, dir, "update", &db, &id) == -1)
		return 1;
	o = updaterun_status(db, &c, 20);
	sqlite3_close(db);
	if (as_json) {
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return 0;
	}
	json_object_object_get_ex(o, "app_dir", &v);
	printf("app_dir: %s\n", *json_object_get_string(v) ?
	    json_object_get_string(v) : "(not set: updates are off)");
	json_object_object_get_ex(o, "journal", &v);
	if (json_object_get_boolean(v))
		printf("a swap is half-done: `meshsync update rollback` (or "
		    "the worker at start-up) finishes or undoes it\n");
	json_object_object_get_ex(o, "backups", &arr);
	printf("backups: %zu\n", json_object_array_length(arr));
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object_object_get_ex(json_object_array_get_idx(arr, i),
		    "name", &v);
		printf("  %s\n", json_object_get_string(v));
	}
	json_object_object_get_ex(o, "updates", &arr);
	if (json_object_array_length(arr) == 0)
		printf("no updates sent or received yet\n");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *r = json_object_array_get_idx(arr, i), *id8, *role,
		    *peer, *st, *d, *t;
		json_object_object_get_ex(r, "id", &id8);
		json_object_object_get_ex(r, "role", &role);
		json_object_object_get_ex(r, "peer", &peer);
		json_object_object_get_ex(r, "state", &st);
		json_object_object_get_ex(r, "detail", &d);
		json_object_object_get_ex(r, "updated", &t);
		printf("%.8s %s %s %s: %s%s%s\n", json_object_get_string(id8),
		    json_object_get_string(t),
		    strcmp(json_object_get_string(role), "origin") == 0 ?
		    "to" : "from", json_object_get_string(peer),
		    json_object_get_string(st),
		    *json_object_get_string(d) ? ": " : "",
		    json_object_get_string(d));
	}
	json_object_put(o);
	return 0;
}

static int
rollback(const char *dir)
{
	struct store_identity id;
	struct conf c;
	sqlite3 *db = NULL;
	char err[1024];
	int rc;

	if (cmd_open_state(&c, dir, "update", &db, &id) == -1)
		return 1;
	rc = updaterun_rollback(db, &c, &id, stdout, err, sizeof(err));
	sqlite3_close(db);
	if (rc != 0) {
		fprintf(stderr, "meshsync update rollback: %s\n", err);
		return 1;
	}
	return 0;
}

static int
apply(const char *dir, const char *uid)
{
	struct conf c;

	if (uid == NULL || strlen(uid) != 32)
		return cmd_usage(me(), 1);
	if (cmd_load(&c, dir, "update") == -1)
		return 1;
	return updaterun_apply(&c, uid);
}

int
cmd_update(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "peer", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "id", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *sel = NULL, *uid = NULL, *sub;
	int ch, all = 0, nowait = 0, as_json = 0;

	if (argc < 2)
		return cmd_usage(me(), 1);
	sub = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'p': sel = optarg; break;
		case 'a': all = 1; break;
		case 'n': nowait = 1; break;
		case 'j': as_json = 1; break;
		case 'i': uid = optarg; break;
		default: return cmd_usage(me(), 1);
		}
	}
	if (optind != argc)
		return cmd_usage(me(), 1);
	if (strcmp(sub, "push") == 0) {
		if ((sel == NULL) == !all)
			return cmd_usage(me(), 1);
		return push(dir, all ? "all" : sel, nowait);
	}
	if (strcmp(sub, "status") == 0)
		return status_cmd(dir, as_json);
	if (strcmp(sub, "rollback") == 0)
		return rollback(dir);
	if (strcmp(sub, "apply") == 0)
		return apply(dir, uid);
	return cmd_usage(me(), 1);
}
