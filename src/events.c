/* events.c - one HTTP POST per event to nchan over a unix socket (libcurl). */
#include "events.h"

#include <sys/file.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "log.h"
#include "node.h"
#include "tm.h"
#include "util.h"

#define EVENTS_TIMEOUT_MS	300

static size_t
discard(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data;
	(void)arg;
	return size * nmemb;
}

static long long
next_seq(sqlite3 *state)
{
	sqlite3_stmt *st = NULL;
	long long seq = 0;

	/* One statement: concurrent publishers (pool workers, the worker)
	 * each get their own number. */
	if (sqlite3_prepare_v2(state, "INSERT INTO settings(key, value) VALUES "
	    "('event_seq', '1') ON CONFLICT(key) DO UPDATE SET value = "
	    "CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)", -1,
	    &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		seq = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return seq;
}

void
events_publish(const struct conf *c, sqlite3 *state, const char *kind,
    json_object *data)
{
	char sock[UTIL_PATH_MAX], now[TM_RFC3339_LEN];
	struct curl_slist *hdrs = NULL;
	const char *body;
	json_object *ev;
	CURLcode cc;
	CURL *h;
	int lock = -1;

	ev = data != NULL ? data : json_object_new_object();
	if (ev == NULL)
		return;
	/*
	 * Publishers are several processes (pool workers, the worker, the
	 * CLI): one that took a number could post after one that took the
	 * next, and subscribers, who resume by number, would see them out
	 * of order.  Taking the number and posting hold one lock.
	 */
	if (node_run_path(c, sock, sizeof(sock), "events.lock") == 0 &&
	    (lock = open(sock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) != -1 &&
	    flock(lock, LOCK_EX) == -1) {
		close(lock);
		lock = -1;
	}
	json_object_object_add(ev, "seq", json_object_new_int64(next_seq(state)));
	json_object_object_add(ev, "kind", json_object_new_string(kind));
	json_object_object_add(ev, "time", json_object_new_string(
	    tm_rfc3339(now, sizeof(now), tm_now_ms())));
	body = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN);
	if (node_run_path(c, sock, sizeof(sock), "events.sock") == -1 ||
	    (h = curl_easy_init()) == NULL) {
		json_object_put(ev);
		if (lock != -1)
			close(lock);
		return;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(h, CURLOPT_URL, "http://localhost/pub");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)EVENTS_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		log_debug("event %s not published: %s", kind,
		    curl_easy_strerror(cc));
	if (lock != -1)
		close(lock);	/* releases the flock */
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	json_object_put(ev);
}
