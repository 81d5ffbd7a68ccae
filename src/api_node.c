/* api_node.c - ping, health and status: what this node is and whether it is well. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "api.h"
#include "node.h"
#include "syncrun.h"
#include "tm.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* Below this much free space on the node's disk, health fails: a sync that
 * cannot write its temp files is worse than one that is known to be off. */
#define HEALTH_MIN_FREE_BYTES	(64LL << 20)

int
api_ping(struct req *r)
{
	const struct req_ctx *c = r->ctx;
	char now[TM_RFC3339_LEN];
	json_object *o = json_object_new_object(), *caps;

	if (o == NULL)
		return -1;
	json_object_object_add(o, "node_id", json_object_new_string(c->id->node_id));
	json_object_object_add(o, "name", json_object_new_string(c->conf->name));
	json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(o, "protocol", json_object_new_int(MESHSYNC_PROTOCOL));
	json_object_object_add(o, "public_key", json_object_new_string(c->id->pk));
	json_object_object_add(o, "url", json_object_new_string(c->conf->public_url));
	json_object_object_add(o, "time", json_object_new_string(
	    tm_rfc3339(now, sizeof(now), tm_now_ms())));
	caps = json_object_new_array();
	json_object_array_add(caps, json_object_new_string("ping"));
	json_object_array_add(caps, json_object_new_string("update"));
	json_object_object_add(o, "capabilities", caps);
	return req_json(r, 200, o);
}

static void
check(json_object *checks, int *all, const char *name, int ok,
    const char *detail)
{
	json_object *c = json_object_new_object();

	json_object_object_add(c, "ok", json_object_new_boolean(ok));
	json_object_object_add(c, "detail", json_object_new_string(detail));
	json_object_object_add(checks, name, c);
	if (!ok)
		*all = 0;
}

int
api_health(struct req *r)
{
	const struct conf *cf = r->ctx->conf;
	json_object *o = json_object_new_object(), *checks;
	char detail[256];
	struct statvfs vfs;
	struct stat st;
	int all = 1, age;

	if (o == NULL)
		return -1;
	checks = json_object_new_object();

	check(checks, &all, "state_db",
	    store_scalar(r->ctx->db, "SELECT count(*) FROM settings") > 0,
	    "state database readable");

	if (stat(cf->instance_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(cf->instance_dir, W_OK) == 0)
		check(checks, &all, "instance_dir", 1, "present and writable");
	else
		check(checks, &all, "instance_dir", 0, errno ? strerror(errno) :
		    "not a writable directory");

	age = node_worker_age(cf);
	if (age < 0)
		check(checks, &all, "worker", 0, "sync worker not running");
	else if (age > NODE_HEARTBEAT_STALE_S) {
		snprintf(detail, sizeof(detail), "no heartbeat for %d s", age);
		check(checks, &all, "worker", 0, detail);
	} else
		check(checks, &all, "worker", 1, "alive");

	if (statvfs(cf->dir, &vfs) == 0) {
		long long avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
		snprintf(detail, sizeof(detail), "%lld MiB free", avail >> 20);
		check(checks, &all, "disk", avail >= HEALTH_MIN_FREE_BYTES,
		    detail);
	} else
		check(checks, &all, "disk", 0, strerror(errno));

	json_object_object_add(o, "ok", json_object_new_boolean(all));
	json_object_object_add(o, "checks", checks);
	return req_json(r, all ? 200 : 503, o);
}

int
api_status(struct req *r)
{
	const struct req_ctx *c = r->ctx;
	json_object *o = json_object_new_object(), *node, *tz, *counts, *w;
	struct tm_zone_info zi;
	char now[TM_RFC3339_LEN];
	int64_t ms = tm_now_ms();
	int age;

	if (o == NULL)
		return -1;
	node = json_object_new_object();
	json_object_object_add(node, "id", json_object_new_string(c->id->node_id));
	json_object_object_add(node, "name", json_object_new_string(c->conf->name));
	json_object_object_add(node, "url", json_object_new_string(c->conf->public_url));
	json_object_object_add(node, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(o, "node", node);
	json_object_object_add(o, "time", json_object_new_string(
	    tm_rfc3339(now, sizeof(now), ms)));

	tz = json_object_new_object();
	json_object_object_add(tz, "zone", json_object_new_string(c->conf->timezone));
	if (tm_zone_at(c->conf->timezone, ms, &zi) == 0) {
		json_object_object_add(tz, "utc_offset", json_object_new_string(zi.offset));
		json_object_object_add(tz, "abbreviation", json_object_new_string(zi.abbrev));
		json_object_object_add(tz, "local_date", json_object_new_string(zi.date));
		json_object_object_add(tz, "local_time", json_object_new_string(zi.local));
	}
	json_object_object_add(o, "timezone", tz);

	counts = json_object_new_object();
	json_object_object_add(counts, "peers", json_object_new_int64(
	    store_scalar(c->db, "SELECT count(*) FROM peers")));
	json_object_object_add(counts, "users", json_object_new_int64(
	    store_scalar(c->db, "SELECT count(*) FROM users")));
	json_object_object_add(counts, "events", json_object_new_int64(
	    store_scalar(c->db, "SELECT count(*) FROM events")));
	json_object_object_add(o, "counts", counts);

	w = json_object_new_object();
	age = node_worker_age(c->conf);
	json_object_object_add(w, "alive", json_object_new_boolean(age >= 0 &&
	    age <= NODE_HEARTBEAT_STALE_S));
	if (age >= 0)
		json_object_object_add(w, "heartbeat_age_s", json_object_new_int(age));
	json_object_object_add(o, "worker", w);
	json_object_object_add(o, "peers", syncrun_queue(c->db, c->conf));
	return req_json(r, 200, o);
}

/* GET /_meshsync_events_auth (admin): nchan asks once per subscription
 * whether this browser may listen; the route's access class decides. */
int
api_events_auth(struct req *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return req_json(r, 200, o);
}
