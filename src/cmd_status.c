/* cmd_status.c - `meshsync status`: the node, its processes and its peers at a glance. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cmd.h"
#include "node.h"
#include "syncrun.h"
#include "tm.h"

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = CMD_DEFAULT_DIR;
	struct store_identity id;
	struct tm_zone_info zi;
	struct conf c;
	sqlite3 *db = NULL;
	int ch, as_json = 0, age;
	pid_t up, pool;
	json_object *o;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'd')
			dir = optarg;
		else if (ch == 'j')
			as_json = 1;
		else
			return cmd_usage(cmd_find("status"), 1);
	}
	if (cmd_open_state(&c, dir, "status", &db, &id) == -1)
		return 1;
	up = node_pid_alive(&c, "up");
	pool = node_pid_alive(&c, "fcgi");
	age = node_worker_age(&c);
	tm_zone_at(c.timezone, tm_now_ms(), &zi);

	o = json_object_new_object();
	json_object_object_add(o, "node_id", json_object_new_string(id.node_id));
	json_object_object_add(o, "name", json_object_new_string(c.name));
	json_object_object_add(o, "url", json_object_new_string(c.public_url));
	json_object_object_add(o, "up", json_object_new_boolean(up != 0));
	json_object_object_add(o, "pool", json_object_new_boolean(pool != 0));
	json_object_object_add(o, "worker", json_object_new_boolean(
	    age >= 0 && age <= NODE_HEARTBEAT_STALE_S));
	json_object_object_add(o, "timezone", json_object_new_string(c.timezone));
	json_object_object_add(o, "utc_offset", json_object_new_string(zi.offset));
	json_object_object_add(o, "local_date", json_object_new_string(zi.date));
	json_object_object_add(o, "peers", syncrun_queue(db, &c));
	if (as_json) {
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		printf("node     %s (%s)\n", c.name, id.node_id);
		printf("url      %s\n", c.public_url);
		printf("nginx    %s\n", up ? "running" : "stopped");
		printf("pool     %s\n", pool ? "running" : "stopped");
		printf("worker   %s\n", age < 0 ? "stopped" :
		    age <= NODE_HEARTBEAT_STALE_S ? "running" : "not responding");
		printf("timezone %s (UTC%s), local date %s\n", c.timezone,
		    zi.offset, zi.date);
		json_object *q, *v;
		json_object_object_get_ex(o, "peers", &q);
		for (size_t i = 0; i < json_object_array_length(q); i++) {
			json_object *p = json_object_array_get_idx(q, i);
			json_object_object_get_ex(p, "peer", &v);
			printf("peer     %s: ", json_object_get_string(v));
			json_object_object_get_ex(p, "pending_rows_total", &v);
			printf("%lld changes", (long long)json_object_get_int64(v));
			json_object_object_get_ex(p, "pending_files", &v);
			printf(" and %lld files pending",
			    (long long)json_object_get_int64(v));
			if (json_object_object_get_ex(p, "oldest_pending_s", &v) &&
			    v != NULL)
				printf(" (oldest %lld s)",
				    (long long)json_object_get_int64(v));
			json_object_object_get_ex(p, "last_success", &v);
			printf(", last sync %s", v ? json_object_get_string(v) :
			    "never");
			json_object_object_get_ex(p, "consecutive_failures", &v);
			if (json_object_get_int64(v) > 0) {
				printf(", %lld failures in a row",
				    (long long)json_object_get_int64(v));
				json_object_object_get_ex(p, "last_error", &v);
				printf(": %s", v ? json_object_get_string(v) : "");
			}
			printf("\n");
		}
	}
	json_object_put(o);
	sqlite3_close(db);
	return 0;
}
