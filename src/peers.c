/* peers.c - the pinned-peer table: trust on first use, explicit repin, nonce replay guard. */
#include "peers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"
#include "tm.h"
#include "util.h"

int
peers_normalize_url(const char *in, char *out, size_t outsz, char *err,
    size_t errsz)
{
	const char *scheme = "http", *host;
	char hostport[PEERS_URL_MAX];
	size_t n;

	if (strncmp(in, "http://", 7) == 0)
		host = in + 7;
	else if (strncmp(in, "https://", 8) == 0) {
		scheme = "https";
		host = in + 8;
	} else if (strstr(in, "://") != NULL) {
		util_fmt(err, errsz, "only http:// and https:// peers");
		return -1;
	} else
		host = in;
	n = strcspn(host, "/?#");
	if (n == 0 || n >= sizeof(hostport)) {
		util_fmt(err, errsz, "missing or overlong host in '%s'", in);
		return -1;
	}
	memcpy(hostport, host, n);
	hostport[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)hostport[i];
		if (!isalnum(c) && c != '.' && c != '-' && c != ':' &&
		    c != '[' && c != ']') {
			util_fmt(err, errsz, "bad character in host '%s'", in);
			return -1;
		}
	}
	if (strchr(hostport, '@') != NULL) {
		util_fmt(err, errsz, "no user info in peer addresses");
		return -1;
	}
	if (util_fmt(out, outsz, "%s://%s", scheme, hostport) == -1) {
		util_fmt(err, errsz, "address too long");
		return -1;
	}
	return 0;
}

#define PEER_COLS "id, node_id, name, url, pubkey, enabled, they_know_us"

static void
fill(sqlite3_stmt *st, struct peer *p)
{
	p->id = sqlite3_column_int(st, 0);
	util_strlcpy(p->node_id, (const char *)sqlite3_column_text(st, 1),
	    sizeof(p->node_id));
	util_strlcpy(p->name, (const char *)sqlite3_column_text(st, 2),
	    sizeof(p->name));
	util_strlcpy(p->url, (const char *)sqlite3_column_text(st, 3),
	    sizeof(p->url));
	util_strlcpy(p->pubkey, (const char *)sqlite3_column_text(st, 4),
	    sizeof(p->pubkey));
	p->enabled = sqlite3_column_int(st, 5);
	p->they_know_us = sqlite3_column_int(st, 6);
}

static int
find_by(sqlite3 *db, const char *sql, const char *key, struct peer *p)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		fill(st, p);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int
peers_by_node(sqlite3 *db, const char *node_id, struct peer *p)
{
	return find_by(db, "SELECT " PEER_COLS " FROM peers WHERE node_id = ?",
	    node_id, p);
}

int
peers_find(sqlite3 *db, const char *key, struct peer *p)
{
	int rc = find_by(db, "SELECT " PEER_COLS " FROM peers WHERE "
	    "CAST(id AS TEXT) = ?", key, p);

	if (rc != 1)
		return rc;
	if ((rc = peers_by_node(db, key, p)) != 1)
		return rc;
	return find_by(db, "SELECT " PEER_COLS " FROM peers WHERE name = ?",
	    key, p);
}

int
peers_add(sqlite3 *db, struct peer *p, char *err, size_t errsz)
{
	char now[TM_RFC3339_LEN];
	sqlite3_stmt *st = NULL;
	struct peer other;
	int rc = -1;

	if (peers_by_node(db, p->node_id, &other) == 0) {
		util_fmt(err, errsz, "node %s is already a peer (as '%s')",
		    p->node_id, other.name);
		return -1;
	}
	if (find_by(db, "SELECT " PEER_COLS " FROM peers WHERE name = ?",
	    p->name, &other) == 0) {
		util_fmt(err, errsz, "a peer named '%s' exists already "
		    "(choose another with --name)", p->name);
		return -1;
	}
	tm_rfc3339_s(now, sizeof(now), tm_now_ms());
	if (sqlite3_prepare_v2(db, "INSERT INTO peers(node_id, name, url, "
	    "pubkey, enabled, added) VALUES (?, ?, ?, ?, 1, ?)", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, p->node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->pubkey, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	p->id = (int)sqlite3_last_insert_rowid(db);
	p->enabled = 1;
	rc = 0;
	goto done;
fail:
	util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
done:
	sqlite3_finalize(st);
	return rc;
}

static int
exec_id(sqlite3 *db, const char *sql, int id, const char *text, int num)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int(st, 1, id);
	if (text != NULL)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int(st, 2, num);
	if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) > 0)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

int
peers_set_enabled(sqlite3 *db, int id, int enabled)
{
	return exec_id(db, "UPDATE peers SET enabled = ?2 WHERE id = ?1", id,
	    NULL, enabled ? 1 : 0);
}

int
peers_remove(sqlite3 *db, int id)
{
	return exec_id(db, "DELETE FROM peers WHERE id = ?1 AND ?2 = 0", id,
	    NULL, 0);
}

int
peers_repin(sqlite3 *db, int id, const char *pubkey)
{
	/* A new key also means they have to accept us again. */
	return exec_id(db, "UPDATE peers SET pubkey = ?2, they_know_us = 0 "
	    "WHERE id = ?1", id, pubkey, 0);
}

void
peers_note(sqlite3 *db, int id, const char *field, const char *msg,
    int they_know_us)
{
	char now[TM_RFC3339_LEN];

	tm_rfc3339(now, sizeof(now), tm_now_ms());
	if (strcmp(field, "seen") == 0)
		exec_id(db, "UPDATE peers SET last_seen = ?2 WHERE id = ?1", id,
		    now, 0);
	else if (strcmp(field, "ok") == 0)
		exec_id(db, "UPDATE peers SET last_ok = ?2, last_error = NULL "
		    "WHERE id = ?1", id, now, 0);
	else if (strcmp(field, "error") == 0)
		exec_id(db, "UPDATE peers SET last_error = ?2 WHERE id = ?1", id,
		    msg, 0);
	if (they_know_us >= 0)
		exec_id(db, "UPDATE peers SET they_know_us = ?2 WHERE id = ?1",
		    id, NULL, they_know_us);
}

json_object *
peers_list(sqlite3 *db)
{
	json_object *arr = json_object_new_array();
	sqlite3_stmt *st = NULL;

	if (arr == NULL || sqlite3_prepare_v2(db, "SELECT " PEER_COLS
	    ", added, last_seen, last_ok, last_error FROM peers ORDER BY name",
	    -1, &st, NULL) != SQLITE_OK) {
		json_object_put(arr);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_object *o = json_object_new_object();
		char fp[64], host[PEERS_URL_MAX];
		struct peer p;
		const char *hp, *colon;
		int port;

		fill(st, &p);
		keys_fingerprint(fp, sizeof(fp), p.pubkey);
		hp = strstr(p.url, "://") + 3;
		util_strlcpy(host, hp, sizeof(host));
		colon = strrchr(host, ':');
		port = strncmp(p.url, "https", 5) == 0 ? 443 : 80;
		if (colon != NULL && strchr(colon, ']') == NULL) {
			port = atoi(colon + 1);
			host[colon - host] = '\0';
		}
		json_object_object_add(o, "id", json_object_new_int(p.id));
		json_object_object_add(o, "node_id", json_object_new_string(p.node_id));
		json_object_object_add(o, "name", json_object_new_string(p.name));
		json_object_object_add(o, "url", json_object_new_string(p.url));
		json_object_object_add(o, "scheme", json_object_new_string(
		    strncmp(p.url, "https", 5) == 0 ? "https" : "http"));
		json_object_object_add(o, "host", json_object_new_string(host));
		json_object_object_add(o, "port", json_object_new_int(port));
		json_object_object_add(o, "public_key", json_object_new_string(p.pubkey));
		json_object_object_add(o, "fingerprint", json_object_new_string(fp));
		json_object_object_add(o, "enabled", json_object_new_boolean(p.enabled));
		json_object_object_add(o, "they_know_us",
		    json_object_new_boolean(p.they_know_us));
		/* Connected means both sides pinned each other: we did by
		 * having the row, they did by accepting our signature. */
		json_object_object_add(o, "connected",
		    json_object_new_boolean(p.enabled && p.they_know_us));
		for (int i = 7; i <= 10; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			json_object_object_add(o, sqlite3_column_name(st, i),
			    v ? json_object_new_string(v) : NULL);
		}
		json_object_array_add(arr, o);
	}
	sqlite3_finalize(st);
	return arr;
}

int
peers_nonce_use(sqlite3 *db, const char *node_id, const char *nonce,
    int64_t ts_ms, int64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	/* Anything older than twice the window can never be accepted again
	 * (its timestamp fails first), so it need not be remembered. */
	if (sqlite3_prepare_v2(db, "DELETE FROM nonces WHERE ts_ms < ?", -1,
	    &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now_ms - 2 * SIGN_WINDOW_MS);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "INSERT INTO nonces(node_id, nonce, ts_ms) "
	    "VALUES (?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, nonce, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ts_ms);
	switch (sqlite3_step(st)) {
	case SQLITE_DONE:
		rc = 0;
		break;
	case SQLITE_CONSTRAINT:
		rc = 1;
		break;
	default:
		break;
	}
	sqlite3_finalize(st);
	return rc;
}
