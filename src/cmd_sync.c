/* cmd_sync.c - `meshsync sync`: one bidirectional sync with one or every peer, now. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "sync.h"
#include "syncrun.h"

static int shown;	/* a progress line is on the terminal */

/* One line, rewritten in place, while a long sync runs. */
static void
show_progress(const char *peer, const struct sync_counts *n)
{
	fprintf(stderr, "\r%s: %lld sent, %lld received, %lld files so far\033[K",
	    peer, (long long)n->sent, (long long)n->received,
	    (long long)(n->files_sent + n->files_received));
	fflush(stderr);
	shown = 1;
}

int
cmd_sync(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "peer", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *only = NULL;
	struct store_identity id;
	struct conf c;
	sqlite3 *db = NULL;
	json_object *res, *arr, *v;
	int ch, as_json = 0, failed;
	size_t n;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'p': only = optarg; break;
		case 'a': only = NULL; break;
		case 'j': as_json = 1; break;
		default: return cmd_usage(cmd_find("sync"), 1);
		}
	}
	if (optind != argc)
		return cmd_usage(cmd_find("sync"), 1);
	if (cmd_open_state(&c, dir, "sync", &db, &id) == -1)
		return 1;
	if (!as_json && isatty(STDERR_FILENO))
		syncrun_on_progress(show_progress);
	res = syncrun_all(db, &c, &id, only);
	if (shown)
		fputs("\r\033[K", stderr);
	sqlite3_close(db);
	if (res == NULL) {
		fprintf(stderr, "meshsync sync: no peer '%s'\n", only);
		return 1;
	}
	json_object_object_get_ex(res, "failed", &v);
	failed = json_object_get_int(v);
	if (as_json) {
		puts(json_object_to_json_string_ext(res, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(res);
		return failed ? 1 : 0;
	}
	json_object_object_get_ex(res, "peers", &arr);
	n = json_object_array_length(arr);
	if (n == 0)
		printf("no enabled peers: add one with `meshsync peer add`\n");
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(arr, i), *p, *e;
		json_object_object_get_ex(r, "peer", &p);
		if (json_object_object_get_ex(r, "error", &e))
			printf("%s: failed: %s\n", json_object_get_string(p),
			    json_object_get_string(e));
		else {
			json_object_object_get_ex(r, "summary", &e);
			printf("%s: %s\n", json_object_get_string(p),
			    json_object_get_string(e));
		}
	}
	json_object_put(res);
	return failed ? 1 : 0;
}

int
cmd_compact(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR;
	struct store_identity id;
	char err[512];
	struct conf c;
	sqlite3 *db = NULL;
	long long n;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else
			return cmd_usage(cmd_find("compact"), 1);
	}
	if (optind != argc)
		return cmd_usage(cmd_find("compact"), 1);
	if (cmd_open_state(&c, dir, "compact", &db, &id) == -1)
		return 1;
	n = syncrun_compact(db, &c, &id, err, sizeof(err));
	sqlite3_close(db);
	if (n < 0) {
		fprintf(stderr, "meshsync compact: %s\n", err);
		return 1;
	}
	printf("removed %lld change log entries every peer has\n", n);
	return 0;
}
