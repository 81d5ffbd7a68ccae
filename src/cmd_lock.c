/* cmd_lock.c - `meshsync lock acquire|renew|release|list`, directly on the state DB. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "locks.h"
#include "tm.h"
#include "util.h"

static int
list(sqlite3 *db)
{
	json_object *arr = locks_list(db, tm_now_ms(), NULL);
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (arr == NULL) {
		fprintf(stderr, "meshsync lock: cannot read the leases: %s\n",
		    sqlite3_errmsg(db));
		return 1;
	}
	if (n == 0)
		printf("no leases held\n");
	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(arr, i), *v;

		json_object_object_get_ex(l, "resource", &v);
		printf("%-24s ", json_object_get_string(v));
		json_object_object_get_ex(l, "owner", &v);
		printf("%-24s ", json_object_get_string(v));
		json_object_object_get_ex(l, "token", &v);
		printf("token %-6lld ", (long long)json_object_get_int64(v));
		json_object_object_get_ex(l, "expires", &v);
		printf("until %s\n", json_object_get_string(v));
	}
	json_object_put(arr);
	return 0;
}

int
cmd_lock(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "ttl", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *verb, *res, *owner, *es;
	char err[256], until[TM_RFC3339_LEN];
	long long ttl = LOCKS_TTL_DEFAULT, token = 0;
	struct locks_lease l;
	enum locks_result r;
	struct conf c;
	sqlite3 *db = NULL;
	int ch, rc = 1, nargs, capped = 0;

	/* GNU getopt permutes, so options may follow the verb and names. */
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 't') {
			if (util_strtonum(optarg, 1, INT64_MAX, &ttl, &es) == -1) {
				fprintf(stderr, "meshsync lock: --ttl is %s "
				    "(1..%d seconds)\n", es, LOCKS_TTL_MAX);
				return 2;
			}
			ttl = locks_ttl_clamp(ttl, &capped);
		} else
			return cmd_usage(cmd_find("lock"), 1);
	}
	nargs = argc - optind;
	if (nargs < 1)
		return cmd_usage(cmd_find("lock"), 1);
	verb = argv[optind];
	if (!((strcmp(verb, "acquire") == 0 && nargs == 3) ||
	    (strcmp(verb, "renew") == 0 && nargs == 4) ||
	    (strcmp(verb, "release") == 0 && nargs == 3) ||
	    (strcmp(verb, "list") == 0 && nargs == 1)))
		return cmd_usage(cmd_find("lock"), 1);
	res = nargs > 1 ? argv[optind + 1] : NULL;
	owner = nargs > 2 ? argv[optind + 2] : NULL;
	if (nargs == 4 && util_strtonum(argv[optind + 3], 1, INT64_MAX, &token,
	    &es) == -1) {
		fprintf(stderr, "meshsync lock: TOKEN is %s\n", es);
		return 2;
	}
	if (cmd_open_state(&c, dir, "lock", &db, NULL) == -1)
		return 1;
	if (strcmp(verb, "list") == 0) {
		rc = list(db);
		goto done;
	}
	if (strcmp(verb, "acquire") == 0)
		r = locks_acquire(db, res, owner, ttl, tm_now_ms(), &l, err,
		    sizeof(err));
	else if (strcmp(verb, "renew") == 0)
		r = locks_renew(db, res, owner, token, ttl, tm_now_ms(), &l, err,
		    sizeof(err));
	else
		r = locks_release(db, res, owner, 0, tm_now_ms(), &l, err,
		    sizeof(err));
	tm_rfc3339(until, sizeof(until), l.expires_ms);
	switch (r) {
	case LOCKS_OK:
		if (strcmp(verb, "release") == 0)
			printf("released %s (token %lld)\n", l.resource,
			    (long long)l.token);
		else
			printf("%s %s for %s: token %lld until %s\n",
			    verb[0] == 'a' ? "acquired" : "renewed", l.resource,
			    l.owner, (long long)l.token, until);
		if (capped && strcmp(verb, "release") != 0)
			printf("(ttl capped at %d s)\n", LOCKS_TTL_MAX);
		rc = 0;
		break;
	case LOCKS_HELD:
	case LOCKS_WRONG_OWNER:
		fprintf(stderr, "meshsync lock: %s is held by %s until %s\n",
		    l.resource, l.owner, until);
		break;
	case LOCKS_NOT_FOUND:
		fprintf(stderr, "meshsync lock: no lease on %s\n", res);
		break;
	case LOCKS_WRONG_TOKEN:
		fprintf(stderr, "meshsync lock: token %lld is not the current "
		    "token of %s\n", token, res);
		break;
	default:
		fprintf(stderr, "meshsync lock: %s\n", err);
		break;
	}
done:
	sqlite3_close(db);
	return rc;
}
