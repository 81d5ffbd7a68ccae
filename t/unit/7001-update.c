/* 7001-update.c - the update engine on a real filesystem: manifest, refusals, verified staging, swap with preserved paths, restore. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "fpath.h"
#include "tap.h"
#include "update.h"
#include "util.h"

static char base[PATH_MAX];

static void
put(const char *dir, const char *rel, const char *text)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

static int
has(const char *dir, const char *rel, const char *text)
{
	char p[PATH_MAX * 2], *got = NULL;
	int ok;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (util_read_file(p, 1 << 20, &got, NULL) == -1)
		return 0;
	ok = strcmp(got, text) == 0;
	free(got);
	return ok;
}

/* Fetch from the origin tree; `lie` writes other bytes instead. */
struct src {
	const char	*root;
	int		 lie;
	int		 calls;
};

static int
fetch(void *arg, const char *path, const char *hash, int64_t size,
    struct files_sink *out, char *err, size_t errsz)
{
	struct src *s = arg;
	char p[PATH_MAX * 2], *data = NULL;
	size_t len = 0;

	(void)hash;
	(void)size;
	s->calls++;
	if (s->lie) {
		if (files_sink_write(out, "forged", 6) == -1)
			return -1;
		return 0;
	}
	snprintf(p, sizeof(p), "%s/%s", s->root, path);
	if (util_read_file(p, 1 << 20, &data, &len) == -1) {
		snprintf(err, errsz, "read %s", path);
		return -1;
	}
	if (len > 0 && files_sink_write(out, data, len) == -1) {
		free(data);
		return -1;
	}
	free(data);
	return 0;
}

static void
cfg(struct update_cfg *u, const char *app, const char *node)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->app_dir, sizeof(u->app_dir), "%s", app);
	snprintf(u->node_dir, sizeof(u->node_dir), "%s", node);
	snprintf(u->instance_dir, sizeof(u->instance_dir), "%s/instance", node);
	snprintf(u->backups_dir, sizeof(u->backups_dir), "%s/backups", node);
	snprintf(u->log_path, sizeof(u->log_path), "%s/update.log", node);
	snprintf(u->preserve, sizeof(u->preserve), ".git *.db");
	snprintf(u->scripts, sizeof(u->scripts), "run_production run");
	u->health_timeout = 1;
	u->keep_backups = 2;
}

static json_object *
entry(const char *path, const char *kind, const char *hash)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "path", json_object_new_string(path));
	json_object_object_add(e, "kind", json_object_new_string(kind));
	json_object_object_add(e, "mode", json_object_new_int(0644));
	json_object_object_add(e, "size", json_object_new_int(1));
	json_object_object_add(e, "hash", json_object_new_string(hash));
	return e;
}

static int
refused(json_object *files)
{
	json_object *m = json_object_new_object();
	char err[256];
	int rc;

	json_object_object_add(m, "files", files);
	rc = update_manifest_check(m, err, sizeof(err));
	json_object_put(m);
	return rc == -1;
}

int
main(void)
{
	char O[PATH_MAX], T[PATH_MAX], N[PATH_MAX], stage[UTIL_PATH_MAX];
	char err[1024], backup[256], restored[256], cmd[PATH_MAX * 3];
	const char *h = "0000000000000000000000000000000000000000000000000000000000000000";
	struct update_cfg uo, ut;
	struct update_stats st;
	struct src s = { 0 };
	struct files_fetcher f = { .fetch = fetch, .arg = &s };
	json_object *m = NULL, *files, *arr;
	int found_db = 0;

	if (sodium_init() < 0)
		return 1;
	snprintf(base, sizeof(base), "/tmp/ms-unit-update.XXXXXX");
	if (mkdtemp(base) == NULL)
		return 1;
	util_fmt(O, sizeof(O), "%s/origin", base);
	util_fmt(T, sizeof(T), "%s/target", base);
	util_fmt(N, sizeof(N), "%s/node", base);
	mkdir(O, 0755);
	mkdir(N, 0755);
	snprintf(cmd, sizeof(cmd), "%s/lib", O);
	mkdir(cmd, 0755);
	put(O, "version.txt", "v1\n");
	put(O, "lib/code.txt", "code\n");
	put(O, "origin.db", "origin's own database\n");
	snprintf(cmd, sizeof(cmd), "cp -a %s %s", O, T);
	if (system(cmd) != 0)
		return 1;
	put(T, "local.db", "target data\n");
	put(O, "version.txt", "v2\n");
	put(O, "lib/new.txt", "new\n");
	snprintf(cmd, sizeof(cmd), "%s/current", O);
	symlink("version.txt", cmd);

	cfg(&uo, O, "/nonexistent-node");
	cfg(&ut, T, N);

	tap_ok(update_manifest_build(&uo, &m, err, sizeof(err)) == 0,
	    "manifest of the origin tree");
	json_object_object_get_ex(m, "files", &files);
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *e = json_object_array_get_idx(files, i), *p;
		json_object_object_get_ex(e, "path", &p);
		if (strcmp(json_object_get_string(p), "origin.db") == 0)
			found_db = 1;
	}
	tap_is_int((long long)json_object_array_length(files), 5,
	    "lib, lib/code.txt, lib/new.txt, current, version.txt");
	tap_ok(!found_db, "preserved *.db is not part of the release");
	tap_ok(update_manifest_check(m, err, sizeof(err)) == 0,
	    "the origin's manifest passes the checks");

	arr = json_object_new_array();
	json_object_array_add(arr, entry("../evil", "file", h));
	tap_ok(refused(arr), "a path leaving the tree is refused");
	arr = json_object_new_array();
	json_object_array_add(arr, entry("a", "file", h));
	json_object_array_add(arr, entry("a", "file", h));
	tap_ok(refused(arr), "a duplicated path is refused");
	arr = json_object_new_array();
	json_object_array_add(arr, entry("a", "file", "abc"));
	tap_ok(refused(arr), "a malformed hash is refused");
	{
		/* Two files whose sizes add up past INT64_MAX (each alone is
		 * a valid int64): refused, not summed into an overflow. */
		json_object *b1 = entry("a", "file", h), *b2 = entry("b",
		    "file", h);

		json_object_object_add(b1, "size",
		    json_object_new_int64(INT64_MAX / 2 + 1));
		json_object_object_add(b2, "size",
		    json_object_new_int64(INT64_MAX / 2 + 1));
		arr = json_object_new_array();
		json_object_array_add(arr, b1);
		json_object_array_add(arr, b2);
		tap_ok(refused(arr), "sizes adding up past 1 TiB are refused");
	}
	arr = json_object_new_array();
	{
		/* With a target, so that only the hash can be refused. */
		json_object *l = entry("l", "link", h);

		json_object_object_add(l, "target",
		    json_object_new_string("x"));
		json_object_array_add(arr, l);
	}
	tap_ok(refused(arr), "a link whose hash is not its target's is refused");

	s.root = O;
	s.lie = 1;
	tap_ok(update_stage(&ut, m, "feedface", &f, stage, sizeof(stage), &st,
	    err, sizeof(err)) == -1 && strstr(err, "does not match its hash"),
	    "forged content is refused: %s", err);
	tap_ok(access(stage, F_OK) == -1, "and its stage is gone");
	tap_ok(has(T, "version.txt", "v1\n"), "the live tree is untouched");

	s.lie = 0;
	s.calls = 0;
	err[0] = '\0';
	tap_ok(update_stage(&ut, m, "cafebabe", &f, stage, sizeof(stage), &st,
	    err, sizeof(err)) == 0, "stage: %s", err);
	tap_is_int(st.fetched, 2, "only the two changed files were fetched");
	tap_is_int(st.reused, 1, "the unchanged one was copied locally");
	err[0] = '\0';
	tap_ok(update_swap(&ut, stage, "cafebabe", backup, sizeof(backup),
	    err, sizeof(err)) == 0, "swap: %s", err);
	tap_ok(has(T, "version.txt", "v2\n") && has(T, "lib/new.txt", "new\n"),
	    "the new tree is live");
	tap_ok(has(T, "local.db", "target data\n"), "the preserved db moved "
	    "into it");
	snprintf(cmd, sizeof(cmd), "%s/backups/%s", N, backup);
	tap_ok(has(cmd, "version.txt", "v1\n"), "the old tree is a backup");
	snprintf(cmd, sizeof(cmd), "%s/backups/%s/local.db", N, backup);
	tap_ok(access(cmd, F_OK) == -1, "without the preserved db");
	tap_ok(!update_journal_exists(&ut), "no journal after the swap");

	err[0] = '\0';
	tap_ok(update_restore(&ut, NULL, "deadbeef", restored, sizeof(restored),
	    err, sizeof(err)) == 0, "restore: %s", err);
	tap_ok(has(T, "version.txt", "v1\n") && has(T, "local.db",
	    "target data\n"), "the backup is live again, data kept");
	tap_ok(update_restore(&ut, NULL, "deadbee2", restored, sizeof(restored),
	    err, sizeof(err)) == 1, "no more backups: said so");

	json_object_put(m);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", base);
	return tap_done();
}
