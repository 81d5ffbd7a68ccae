/* peer.c - libcurl client for peer requests; every request but ping is signed. */
#include "peer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jget.h"
#include "keys.h"
#include "log.h"
#include "sign.h"
#include "util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
ensure_curl(void)
{
	pthread_once(&curl_once, curl_init_once);
}

/*
 * Handles kept between exchanges: libcurl keeps each one's connection to
 * the peer open, so a sync of many small requests does not pay a TCP
 * handshake each.  An exchange takes a free one (a new one when all are
 * busy: a sync's push, bundle and manifest threads overlap) and gives it
 * back when it is over.
 */
#define PEER_HANDLES	4
static struct {
	CURL	*h;
	int	 busy;
} handles[PEER_HANDLES];
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;

/* A handle with every option at its default, or NULL (out of memory). */
static CURL *
handle_take(void)
{
	CURL *h = NULL;
	int i;

	ensure_curl();
	pthread_mutex_lock(&handles_mu);
	for (i = 0; i < PEER_HANDLES && h == NULL; i++)
		if (handles[i].h != NULL && !handles[i].busy) {
			handles[i].busy = 1;
			h = handles[i].h;
		}
	for (i = 0; i < PEER_HANDLES && h == NULL; i++)
		if (handles[i].h == NULL) {
			if ((handles[i].h = curl_easy_init()) == NULL)
				break;
			handles[i].busy = 1;
			h = handles[i].h;
		}
	pthread_mutex_unlock(&handles_mu);
	if (h == NULL)
		return curl_easy_init();	/* all busy: not kept */
	curl_easy_reset(h);
	return h;
}

static void
handle_give(CURL *h)
{
	pthread_mutex_lock(&handles_mu);
	for (int i = 0; i < PEER_HANDLES; i++)
		if (handles[i].h == h) {
			handles[i].busy = 0;
			pthread_mutex_unlock(&handles_mu);
			return;
		}
	pthread_mutex_unlock(&handles_mu);
	curl_easy_cleanup(h);
}

void
peer_resp_free(struct peer_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

struct sink {
	struct peer_resp	*resp;
	size_t			 cap;
	int			 overflow;
	char			 resp_sig[KEYS_SIG_HEX];
};

/* Keep the response signature header; libcurl hands headers one by one. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb, hl = strlen(SIGN_RESP_HEADER);

	if (n > hl + 2 && strncasecmp(data, SIGN_RESP_HEADER, hl) == 0 &&
	    data[hl] == ':') {
		const char *v = data + hl + 1;
		size_t vl;
		while (*v == ' ')
			v++;
		vl = strcspn(v, "\r\n");
		if (vl < sizeof(s->resp_sig)) {
			memcpy(s->resp_sig, v, vl);
			s->resp_sig[vl] = '\0';
		}
	}
	return n;
}

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (s->resp->len + n > (size_t)PEER_MAX_RESPONSE) {
		s->overflow = 1;
		return 0;
	}
	if (s->resp->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *p;
		while (cap < s->resp->len + n + 1)
			cap *= 2;
		if ((p = realloc(s->resp->body, cap)) == NULL)
			return 0;
		s->resp->body = p;
		s->cap = cap;
	}
	memcpy(s->resp->body + s->resp->len, data, n);
	s->resp->len += n;
	s->resp->body[s->resp->len] = '\0';
	return n;
}

/*
 * After an exchange: a success answer to a signed request must carry the
 * peer's signature over our nonce, the status and the body, else it is
 * dropped as a transport failure; an error answer's JSON reason goes to
 * resp->err.  pk NULL: unsigned request, nothing to check.  Returns 0 or
 * -1 (resp freed).
 */
static int
check_answer(struct peer_resp *resp, const char *sig, const char *pk,
    const char *nonce)
{
	if (pk != NULL && resp->status < 400) {
		char hash[KEYS_HASH_HEX];
		keys_sha256_hex(hash, resp->body ? resp->body : "", resp->len);
		if (sign_response_verify(sig, pk, nonce, resp->status,
		    hash) == -1) {
			util_strlcpy(resp->err, "answer not signed by the "
			    "peer's pinned key", sizeof(resp->err));
			peer_resp_free(resp);
			resp->status = 0;
			return -1;
		}
	}
	if (resp->status >= 400 && resp->body != NULL) {
		json_object *o = json_tokener_parse(resp->body), *e;
		if (o != NULL && json_object_object_get_ex(o, "error", &e))
			util_fmt(resp->err, sizeof(resp->err), "%s",
			    json_object_get_string(e));
		else
			util_fmt(resp->err, sizeof(resp->err), "HTTP %ld",
			    resp->status);
		json_object_put(o);
	}
	return 0;
}

/*
 * A libcurl handle with what every exchange with a peer shares: the URL,
 * protocols, a short connect timeout, and the answer (body and response
 * signature) collected into sink.  NULL when out of memory.
 */
static CURL *
easy_for(const char *url, struct sink *sink)
{
	CURL *h;

	if ((h = handle_take()) == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "meshsync/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
	return h;
}

/* Run the exchange, give back the handle, free the headers, check the
 * answer. */
static int
exchange(CURL *h, struct curl_slist *hdrs, struct sink *sink, const char *pk,
    const char *nonce)
{
	struct peer_resp *resp = sink->resp;
	CURLcode cc;

	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	else if (sink->overflow)
		util_strlcpy(resp->err, "response too large", sizeof(resp->err));
	else
		util_fmt(resp->err, sizeof(resp->err), "%s",
		    curl_easy_strerror(cc));
	/* The handle is kept: it must not point at freed headers. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	handle_give(h);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK) {
		peer_resp_free(resp);
		return -1;
	}
	return check_answer(resp, sink->resp_sig, pk, nonce);
}

/*
 * One HTTP exchange.  With pk/nonce set (a signed request) the answer must
 * carry a response signature by that key over this nonce, status and body;
 * anything else is treated as a transport failure, never as data.
 */
static int
perform(const char *url, const char *method, const char *sig_header,
    const char *body, size_t len, const char *pk, const char *nonce,
    struct peer_resp *resp)
{
	struct curl_slist *hdrs = NULL;
	struct sink sink = { .resp = resp };
	char line[SIGN_HEADER_MAX + 64];
	CURL *h;

	memset(resp, 0, sizeof(*resp));
	if ((h = easy_for(url, &sink)) == NULL) {
		util_strlcpy(resp->err, "out of memory", sizeof(resp->err));
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)PEER_TIMEOUT_S);
	if (sig_header != NULL) {
		util_fmt(line, sizeof(line), "%s: %s", SIGN_HEADER, sig_header);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	}
	/* No "Expect: 100-continue" round trip on small bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	return exchange(h, hdrs, &sink, pk, nonce);
}

int
peer_ping(const char *url, json_object **out, char *err, size_t errsz)
{
	struct peer_resp resp;
	char full[PEERS_URL_MAX + 32];
	json_object *o = NULL, *v;

	*out = NULL;
	util_fmt(full, sizeof(full), "%s/api/sync/ping", url);
	if (perform(full, "GET", NULL, NULL, 0, NULL, NULL, &resp) == -1) {
		util_fmt(err, errsz, "cannot reach %s: %s", url, resp.err);
		return -1;
	}
	if (resp.status != 200 || resp.body == NULL ||
	    (o = json_tokener_parse(resp.body)) == NULL ||
	    !json_object_object_get_ex(o, "node_id", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) != STORE_NODE_ID_LEN - 1 ||
	    !json_object_object_get_ex(o, "public_key", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) != KEYS_PK_HEX - 1) {
		util_fmt(err, errsz, "%s does not answer like a meshsync node "
		    "(HTTP %ld)", url, resp.status);
		json_object_put(o);
		peer_resp_free(&resp);
		return -1;
	}
	peer_resp_free(&resp);
	*out = o;
	return 0;
}

int
peer_call(const struct store_identity *self, const struct peer *p,
    const char *method, const char *uri, const char *body, size_t len,
    struct peer_resp *resp)
{
	char hash[KEYS_HASH_HEX], hdr[SIGN_HEADER_MAX], url[PEERS_URL_MAX + 4096];
	char nonce[SIGN_NONCE_HEX];

	keys_sha256_hex(hash, body ? body : "", len);
	util_random_hex(nonce, sizeof(nonce), 16);
	if (sign_request(hdr, sizeof(hdr), self, p->node_id, method, uri, hash,
	    0, nonce) == -1 || util_fmt(url, sizeof(url), "%s%s", p->url,
	    uri) == -1) {
		memset(resp, 0, sizeof(*resp));
		util_strlcpy(resp->err, "cannot sign the request",
		    sizeof(resp->err));
		return -1;
	}
	return perform(url, method, hdr, body, len, p->pubkey, nonce, resp);
}

int
peer_hello(sqlite3 *db, const struct store_identity *self, struct peer *p,
    char *err, size_t errsz)
{
	struct peer_resp resp;
	json_object *ping = NULL;

	/* The unsigned ping first: a changed key must be seen and named,
	 * not reported as a vague signature failure. */
	if (peer_ping(p->url, &ping, err, errsz) == -1) {
		peers_note(db, p->id, "error", err, -1);
		return -1;
	}
	if (strcmp(jget_str(ping, "node_id", ""), p->node_id) != 0 ||
	    strcmp(jget_str(ping, "public_key", ""), p->pubkey) != 0) {
		char fp[64];
		keys_fingerprint(fp, sizeof(fp), jget_str(ping, "public_key", ""));
		util_fmt(err, errsz, "the identity of %s changed (now %s, key "
		    "%s): if that is expected, run `meshsync peer repin %s`",
		    p->name, jget_str(ping, "node_id", ""), fp, p->name);
		json_object_put(ping);
		peers_note(db, p->id, "error", err, -1);
		return -1;
	}
	json_object_put(ping);
	if (peer_call(self, p, "POST", "/api/sync/hello", "{}", 2, &resp) == -1) {
		util_fmt(err, errsz, "cannot reach %s: %s", p->url, resp.err);
		peers_note(db, p->id, "error", err, -1);
		return -1;
	}
	peer_resp_free(&resp);
	if (resp.status == 200) {
		p->they_know_us = 1;
		peers_note(db, p->id, "ok", NULL, 1);
		return 1;
	}
	if (resp.status == 401 && strstr(resp.err, "unknown peer") != NULL) {
		util_fmt(err, errsz, "%s has not added this node yet: add it "
		    "there too", p->name);
		p->they_know_us = 0;
		peers_note(db, p->id, "error", err, 0);
		return 0;
	}
	util_fmt(err, errsz, "%s refused: %s", p->name, resp.err);
	peers_note(db, p->id, "error", err, 0);
	return -1;
}

int
peer_add_url(sqlite3 *db, const struct store_identity *self, const char *url,
    const char *name, const char *expect_key, struct peer *out, char *err,
    size_t errsz)
{
	char norm[PEERS_URL_MAX], why[256];
	json_object *ping = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (peers_normalize_url(url, norm, sizeof(norm), err, errsz) == -1)
		return -1;
	if (peer_ping(norm, &ping, err, errsz) == -1)
		return -1;
	util_strlcpy(out->node_id, jget_str(ping, "node_id", ""), sizeof(out->node_id));
	util_strlcpy(out->pubkey, jget_str(ping, "public_key", ""), sizeof(out->pubkey));
	util_strlcpy(out->url, norm, sizeof(out->url));
	if (name == NULL || *name == '\0')
		name = *jget_str(ping, "name", "") ? jget_str(ping, "name", "") : norm;
	if (util_strlcpy(out->name, name, sizeof(out->name)) == -1) {
		util_fmt(err, errsz, "peer name too long");
		goto done;
	}
	for (const char *c = out->name; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20) {
			util_fmt(err, errsz, "control characters in peer name");
			goto done;
		}
	if (strcmp(out->node_id, self->node_id) == 0) {
		util_fmt(err, errsz, "%s is this node itself", norm);
		goto done;
	}
	if (expect_key != NULL && *expect_key != '\0' &&
	    strcmp(expect_key, out->pubkey) != 0) {
		util_fmt(err, errsz, "%s now presents a different key than the "
		    "one confirmed: nothing pinned", norm);
		goto done;
	}
	if (peers_add(db, out, err, errsz) == -1)
		goto done;
	log_info("pinned peer %s (%s) at %s", out->name, out->node_id, norm);
	store_event(db, "info", "peer", out->name, "peer added: %s", norm);
	peer_hello(db, self, out, why, sizeof(why));
	rc = 0;
done:
	json_object_put(ping);
	return rc;
}

int
peer_repin(sqlite3 *db, struct peer *p, char *new_fp, size_t fpsz, char *err,
    size_t errsz)
{
	json_object *ping = NULL;
	int rc = -1;

	if (peer_ping(p->url, &ping, err, errsz) == -1)
		return -1;
	if (strcmp(jget_str(ping, "node_id", ""), p->node_id) != 0) {
		util_fmt(err, errsz, "%s now answers as another node (%s): "
		    "remove and add it instead", p->url, jget_str(ping, "node_id", ""));
		goto done;
	}
	if (strcmp(jget_str(ping, "public_key", ""), p->pubkey) == 0) {
		util_fmt(err, errsz, "the key of %s has not changed", p->name);
		goto done;
	}
	util_strlcpy(p->pubkey, jget_str(ping, "public_key", ""), sizeof(p->pubkey));
	if (peers_repin(db, p->id, p->pubkey) == -1) {
		util_fmt(err, errsz, "state DB: %s", sqlite3_errmsg(db));
		goto done;
	}
	keys_fingerprint(new_fp, fpsz, p->pubkey);
	store_event(db, "warn", "peer", p->name, "key re-pinned, new "
	    "fingerprint %s", new_fp);
	rc = 0;
done:
	json_object_put(ping);
	return rc;
}

/* ---- file transfer ------------------------------------------------------ */

#define PEER_DOWNLOAD_TRIES	4

struct dlsink {
	struct files_sink	*out;
	int			 failed;
};

static size_t
to_sink(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dlsink *s = arg;
	size_t n = size * nmemb;

	if (files_sink_write(s->out, data, n) == -1) {
		s->failed = errno;
		return 0;
	}
	return n;
}

int
peer_download(const struct store_identity *self, const struct peer *p,
    const char *uri, struct files_sink *out, int64_t size, char *err,
    size_t errsz)
{
	char hash[KEYS_HASH_HEX], hdr[SIGN_HEADER_MAX], url[PEERS_URL_MAX + 4096];
	char line[SIGN_HEADER_MAX + 64], range[64];
	struct dlsink sink = { .out = out };

	keys_sha256_hex(hash, "", 0);
	if (util_fmt(url, sizeof(url), "%s%s", p->url, uri) == -1) {
		util_fmt(err, errsz, "path too long");
		return -1;
	}
	for (int tries = 0; tries < PEER_DOWNLOAD_TRIES; tries++) {
		struct curl_slist *hdrs = NULL;
		long status = 0;
		CURLcode cc;
		CURL *h;

		/* Each attempt is signed afresh: nonces are single-use. */
		if (sign_request(hdr, sizeof(hdr), self, p->node_id, "GET",
		    uri, hash, 0, NULL) == -1) {
			util_fmt(err, errsz, "cannot sign the request");
			return -1;
		}
		if ((h = handle_take()) == NULL) {
			util_fmt(err, errsz, "out of memory");
			return -1;
		}
		util_fmt(line, sizeof(line), "%s: %s", SIGN_HEADER, hdr);
		hdrs = curl_slist_append(hdrs, line);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
		/* No overall limit for big files, but give up on a stall. */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_sink);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
		curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
		/* Fewer, larger writes into the sink for big files. */
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
		if (out->written > 0 && size >= 0) {
			util_fmt(range, sizeof(range), "%lld-",
			    (long long)out->written);
			curl_easy_setopt(h, CURLOPT_RANGE, range);
		} else if (out->written > 0) {
			/* Unknown size (a snapshot made per request): a
			 * resumed answer could come from another snapshot,
			 * so start again from byte 0. */
			files_sink_drop(out);
			if (ftruncate(out->fd, 0) == -1 ||
			    lseek(out->fd, 0, SEEK_SET) == -1) {
				curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
				handle_give(h);
				curl_slist_free_all(hdrs);
				util_fmt(err, errsz, "temp file: %s",
				    strerror(errno));
				return -1;
			}
			files_sink_init(out, out->fd);
		}
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		/* The handle is kept: it must not point at freed headers. */
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		handle_give(h);
		curl_slist_free_all(hdrs);
		if (sink.failed) {
			util_fmt(err, errsz, "writing the temp file: %s",
			    strerror(sink.failed));
			return -1;
		}
		if (cc == CURLE_OK && (size < 0 || out->written == size))
			return 0;
		if (cc == CURLE_OK && status == 200 && out->written != size) {
			util_fmt(err, errsz, "size changed on the peer (%lld, "
			    "want %lld)", (long long)out->written,
			    (long long)size);
			return -1;
		}
		if (status >= 400) {
			util_fmt(err, errsz, "%s answered %ld", p->name, status);
			return -1;
		}
		log_info("download of %s from %s interrupted at %lld bytes "
		    "(%s): resuming", uri, p->name, (long long)out->written,
		    curl_easy_strerror(cc));
	}
	util_fmt(err, errsz, "download from %s kept failing", p->name);
	return -1;
}

struct fdsrc {
	int	 fd;
};

static size_t
from_fd(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct fdsrc *s = arg;
	ssize_t n;

	do
		n = read(s->fd, buf, size * nmemb);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

int
peer_upload(const struct store_identity *self, const struct peer *p,
    const char *uri, int fd, int64_t size, struct peer_resp *resp)
{
	char hash[KEYS_HASH_HEX], hdr[SIGN_HEADER_MAX], url[PEERS_URL_MAX + 4096];
	char line[SIGN_HEADER_MAX + 64], nonce[SIGN_NONCE_HEX];
	struct sink sink = { .resp = resp };
	struct fdsrc src = { .fd = fd };
	struct curl_slist *hdrs = NULL;
	CURL *h;

	memset(resp, 0, sizeof(*resp));
	if (lseek(fd, 0, SEEK_SET) == -1 || keys_sha256_fd(hash, fd) == -1 ||
	    lseek(fd, 0, SEEK_SET) == -1) {
		util_fmt(resp->err, sizeof(resp->err), "reading the file: %s",
		    strerror(errno));
		return -1;
	}
	util_random_hex(nonce, sizeof(nonce), 16);
	if (sign_request(hdr, sizeof(hdr), self, p->node_id, "POST", uri, hash,
	    0, nonce) == -1 || util_fmt(url, sizeof(url), "%s%s", p->url,
	    uri) == -1 || (h = easy_for(url, &sink)) == NULL) {
		util_strlcpy(resp->err, "cannot sign the request",
		    sizeof(resp->err));
		return -1;
	}
	util_fmt(line, sizeof(line), "%s: %s", SIGN_HEADER, hdr);
	hdrs = curl_slist_append(hdrs, line);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	hdrs = curl_slist_append(hdrs, "Expect:");
	/* No overall limit for a big file, but give up on a stall. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, from_fd);
	curl_easy_setopt(h, CURLOPT_READDATA, &src);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
	return exchange(h, hdrs, &sink, p->pubkey, nonce);
}

/* ---- plain checks ------------------------------------------------------- */

int
peer_http_status(const char *url, int timeout_s, long *status, char *err,
    size_t errsz)
{
	struct peer_resp resp;
	struct sink sink = { .resp = &resp };
	CURLcode cc;
	CURL *h;

	*status = 0;
	memset(&resp, 0, sizeof(resp));
	ensure_curl();
	if ((h = curl_easy_init()) == NULL) {
		util_fmt(err, errsz, "out of memory");
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "meshsync/" PACKAGE_VERSION);
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	else
		util_fmt(err, errsz, "%s", curl_easy_strerror(cc));
	curl_easy_cleanup(h);
	peer_resp_free(&resp);
	return cc == CURLE_OK ? 0 : -1;
}
