/* cmd_peer.c - `meshsync peer add|list|check|enable|disable|remove|repin`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "keys.h"
#include "peer.h"
#include "peers.h"
#include "syncrun.h"
#include "wake.h"

static int
list(sqlite3 *db)
{
	json_object *arr = peers_list(db);
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (n == 0)
		printf("no peers yet: meshsync peer add URL\n");
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(arr, i), *v;
		const char *state, *err = NULL;
		int enabled, connected;

		json_object_object_get_ex(p, "enabled", &v);
		enabled = json_object_get_boolean(v);
		json_object_object_get_ex(p, "connected", &v);
		connected = json_object_get_boolean(v);
		state = !enabled ? "disabled" : connected ? "connected" :
		    "waiting: they have not added this node";
		if (json_object_object_get_ex(p, "last_error", &v) && v != NULL)
			err = json_object_get_string(v);
		json_object_object_get_ex(p, "name", &v);
		printf("%-16s ", json_object_get_string(v));
		json_object_object_get_ex(p, "url", &v);
		printf("%-28s ", json_object_get_string(v));
		json_object_object_get_ex(p, "fingerprint", &v);
		printf("%s  %s\n", json_object_get_string(v), state);
		if (err != NULL && !connected)
			printf("%16s last error: %s\n", "", err);
	}
	json_object_put(arr);
	return 0;
}

int
cmd_peer(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "bootstrap", no_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR, *name = NULL, *verb;
	struct store_identity id;
	char err[512], fp[64];
	struct conf c;
	struct peer p;
	sqlite3 *db = NULL;
	int ch, rc = 1, nargs, bootstrap = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'n')
			name = optarg;
		else if (ch == 'b')
			bootstrap = 1;
		else
			return cmd_usage(cmd_find("peer"), 1);
	}
	nargs = argc - optind;
	if (nargs < 1)
		return cmd_usage(cmd_find("peer"), 1);
	verb = argv[optind];
	if ((strcmp(verb, "list") == 0) != (nargs == 1) || nargs > 2)
		return cmd_usage(cmd_find("peer"), 1);
	if (cmd_open_state(&c, dir, "peer", &db, &id) == -1)
		return 1;
	if (strcmp(verb, "list") == 0) {
		rc = list(db);
		goto done;
	}
	if (strcmp(verb, "add") == 0) {
		if (peer_add_url(db, &id, argv[optind + 1], name, NULL, &p, err,
		    sizeof(err)) == -1)
			goto fail;
		wake_send(&c, "peers");
		keys_fingerprint(fp, sizeof(fp), p.pubkey);
		printf("pinned %s at %s\n  node id     %s\n  fingerprint %s\n",
		    p.name, p.url, p.node_id, fp);
		if (p.they_know_us)
			printf("connected: %s has added this node too\n", p.name);
		else
			printf("not connected yet: add this node on %s too:\n"
			    "  meshsync peer add %s\n", p.name, c.public_url);
		rc = 0;
		if (bootstrap) {
			json_object *res;
			if (!p.they_know_us) {
				fprintf(stderr, "meshsync peer: --bootstrap needs "
				    "%s to have added this node first\n", p.name);
				rc = 1;
				goto done;
			}
			printf("bootstrapping from %s:\n", p.name);
			if (syncrun_bootstrap(db, &c, &id, &p, stdout, err,
			    sizeof(err)) == -1)
				goto fail;
			/* Then follow the feed from the snapshot's cursor. */
			res = syncrun_all(db, &c, &id, p.node_id);
			json_object_put(res);
			wake_send(&c, "config");
			wake_send(&c, "peers");
			printf("caught up with %s\n", p.name);
		}
		goto done;
	}
	if (peers_find(db, argv[optind + 1], &p) != 0) {
		fprintf(stderr, "meshsync peer: no peer '%s'\n", argv[optind + 1]);
		goto done;
	}
	if (strcmp(verb, "check") == 0) {
		switch (peer_hello(db, &id, &p, err, sizeof(err))) {
		case 1:
			printf("%s: connected both ways\n", p.name);
			rc = 0;
			break;
		case 0:
			printf("%s: %s\n", p.name, err);
			break;
		default:
			goto fail;
		}
	} else if (strcmp(verb, "enable") == 0 || strcmp(verb, "disable") == 0) {
		peers_set_enabled(db, p.id, verb[0] == 'e');
		wake_send(&c, "peers");
		printf("%s %sd\n", p.name, verb);
		rc = 0;
	} else if (strcmp(verb, "remove") == 0) {
		peers_remove(db, p.id);
		store_event(db, "info", "peer", p.name, "peer removed");
		printf("%s removed\n", p.name);
		rc = 0;
	} else if (strcmp(verb, "repin") == 0) {
		if (peer_repin(db, &p, fp, sizeof(fp), err, sizeof(err)) == -1)
			goto fail;
		printf("re-pinned %s: new fingerprint %s\n", p.name, fp);
		rc = 0;
	} else
		rc = cmd_usage(cmd_find("peer"), 1);
	goto done;
fail:
	fprintf(stderr, "meshsync peer: %s\n", err);
done:
	sqlite3_close(db);
	return rc;
}
