/* api_peers.c - peer pairing over the API: hello between peers, and the superadmin's peer list. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "keys.h"
#include "peer.h"
#include "peers.h"
#include "util.h"
#include "wake.h"

/* POST /api/sync/hello (peer): reaching here means the signature checked
 * out, so the caller knows that we have pinned it. */
int
api_hello(struct req *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "node_id", json_object_new_string(r->ctx->id->node_id));
	json_object_object_add(o, "name", json_object_new_string(r->ctx->conf->name));
	json_object_object_add(o, "you_are", json_object_new_string(r->auth.peer_name));
	json_object_object_add(o, "body_bytes", json_object_new_int64((int64_t)r->body_len));
	/* What a bootstrapping peer may ask a snapshot of. */
	json_object_object_add(o, "databases",
	    json_object_new_string(r->ctx->conf->databases));
	return req_json(r, 200, o);
}

int
api_peers_list(struct req *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "peers", peers_list(r->ctx->db));
	return req_json(r, 200, o);
}

static const char *
opt_str(json_object *body, const char *key, int *bad)
{
	json_object *v;

	if (!json_object_object_get_ex(body, key, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_string)) {
		*bad = 1;
		return NULL;
	}
	return json_object_get_string(v);
}

/* POST /api/sync/peers {"url": ..., "name"?: ..., "public_key"?: ...} */
int
api_peers_add(struct req *r)
{
	json_object *body = NULL, *o;
	const char *url, *name, *key;
	char err[512], fp[64];
	struct peer p;
	int bad = 0;

	if (req_json_body(r, &body) == -1)
		return 0;
	if (!json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		return req_error(r, 400, "want a JSON object");
	}
	url = opt_str(body, "url", &bad);
	name = opt_str(body, "name", &bad);
	key = opt_str(body, "public_key", &bad);
	if (bad || url == NULL) {
		json_object_put(body);
		return req_error(r, 400, "want {\"url\": string, \"name\"?: "
		    "string, \"public_key\"?: string}");
	}
	if (peer_add_url(r->ctx->db, r->ctx->id, url, name, key, &p, err,
	    sizeof(err)) == -1) {
		json_object_put(body);
		return req_error(r, 400, "%s", err);
	}
	json_object_put(body);
	wake_send(r->ctx->conf, "peers");
	keys_fingerprint(fp, sizeof(fp), p.pubkey);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int(p.id));
	json_object_object_add(o, "node_id", json_object_new_string(p.node_id));
	json_object_object_add(o, "name", json_object_new_string(p.name));
	json_object_object_add(o, "url", json_object_new_string(p.url));
	json_object_object_add(o, "fingerprint", json_object_new_string(fp));
	json_object_object_add(o, "connected", json_object_new_boolean(p.they_know_us));
	if (!p.they_know_us)
		json_object_object_add(o, "missing", json_object_new_string(
		    "the peer has not added this node yet"));
	return req_json(r, 201, o);
}

/* POST /api/sync/peers/action {"peer": id|name|node_id, "op": ...} */
int
api_peers_action(struct req *r)
{
	json_object *body = NULL, *o;
	const char *key, *op;
	char err[512], fp[64];
	struct peer p;
	int bad = 0, rc = 0;

	if (req_json_body(r, &body) == -1)
		return 0;
	if (!json_object_is_type(body, json_type_object)) {
		json_object_put(body);
		return req_error(r, 400, "want a JSON object");
	}
	key = opt_str(body, "peer", &bad);
	op = opt_str(body, "op", &bad);
	if (bad || key == NULL || op == NULL) {
		json_object_put(body);
		return req_error(r, 400, "want {\"peer\": string, \"op\": "
		    "enable|disable|remove|repin|check}");
	}
	if (peers_find(r->ctx->db, key, &p) != 0) {
		json_object_put(body);
		return req_error(r, 404, "no such peer");
	}
	err[0] = '\0';
	if (strcmp(op, "enable") == 0 || strcmp(op, "disable") == 0)
		rc = peers_set_enabled(r->ctx->db, p.id, op[0] == 'e');
	else if (strcmp(op, "remove") == 0)
		rc = peers_remove(r->ctx->db, p.id);
	else if (strcmp(op, "repin") == 0)
		rc = peer_repin(r->ctx->db, &p, fp, sizeof(fp), err, sizeof(err));
	else if (strcmp(op, "check") == 0)
		rc = peer_hello(r->ctx->db, r->ctx->id, &p, err,
		    sizeof(err)) == 1 ? 0 : -1;
	else {
		json_object_put(body);
		return req_error(r, 400, "unknown op");
	}
	json_object_put(body);
	if (rc == -1)
		return req_error(r, strcmp(op, "check") == 0 ? 502 : 400, "%s",
		    *err ? err : "failed");
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return req_json(r, 200, o);
}
