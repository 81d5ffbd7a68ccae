/* sign.c - canonical signing string and header parsing for peer requests. */
#include "sign.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tm.h"
#include "util.h"

/* The exact bytes both sides sign; any difference fails verification. */
static int
canonical(char *buf, size_t bufsz, const char *method, const char *uri,
    const char *to, int64_t ts, const char *nonce, const char *body_hash)
{
	return util_fmt(buf, bufsz, "meshsync-sig-v1\n%s\n%s\n%s\n%lld\n%s\n%s",
	    method, uri, to, (long long)ts, nonce, body_hash);
}

int
sign_request(char *out, size_t outsz, const struct store_identity *self,
    const char *to, const char *method, const char *uri,
    const char *body_sha256_hex, int64_t ts_ms, const char *nonce)
{
	char msg[4096 + 512], n[SIGN_NONCE_HEX], sig[KEYS_SIG_HEX];

	if (nonce == NULL) {
		util_random_hex(n, sizeof(n), 16);
		nonce = n;
	}
	if (ts_ms == 0)
		ts_ms = tm_now_ms();
	if (strlen(uri) > 4096 || canonical(msg, sizeof(msg), method, uri, to,
	    ts_ms, nonce, body_sha256_hex) == -1)
		return -1;
	if (keys_sign(sig, self->sk, msg, strlen(msg)) == -1)
		return -1;
	return util_fmt(out, outsz, "node=%s, to=%s, ts=%lld, nonce=%s, sig=%s",
	    self->node_id, to, (long long)ts_ms, nonce, sig);
}

static int
hexfield(const char *v, size_t len, char *out, size_t outsz)
{
	if (len == 0 || len >= outsz)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)v[i]))
			return -1;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

int
sign_parse(const char *value, struct sign_hdr *h, char *err, size_t errsz)
{
	const char *p = value;
	int seen = 0;

	memset(h, 0, sizeof(*h));
	if (strlen(value) > SIGN_HEADER_MAX) {
		util_fmt(err, errsz, "signature header too long");
		return -1;
	}
	while (*p != '\0') {
		const char *eq, *v;
		size_t klen, vlen;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		eq = strchr(p, '=');
		if (eq == NULL)
			goto bad;
		klen = (size_t)(eq - p);
		v = eq + 1;
		vlen = strcspn(v, ", ");
		if (klen == 4 && strncmp(p, "node", 4) == 0) {
			if (hexfield(v, vlen, h->node, sizeof(h->node)) == -1)
				goto bad;
			seen |= 1;
		} else if (klen == 2 && strncmp(p, "to", 2) == 0) {
			if (hexfield(v, vlen, h->to, sizeof(h->to)) == -1)
				goto bad;
			seen |= 2;
		} else if (klen == 2 && strncmp(p, "ts", 2) == 0) {
			char num[24];
			long long ts;
			const char *es;
			if (vlen == 0 || vlen >= sizeof(num))
				goto bad;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			if (util_strtonum(num, 0, 1LL << 52, &ts, &es) == -1)
				goto bad;
			h->ts_ms = ts;
			seen |= 4;
		} else if (klen == 5 && strncmp(p, "nonce", 5) == 0) {
			if (hexfield(v, vlen, h->nonce, sizeof(h->nonce)) == -1)
				goto bad;
			seen |= 8;
		} else if (klen == 3 && strncmp(p, "sig", 3) == 0) {
			if (hexfield(v, vlen, h->sig, sizeof(h->sig)) == -1)
				goto bad;
			seen |= 16;
		} else
			goto bad;
		p = v + vlen;
	}
	if (seen != 31) {
		util_fmt(err, errsz, "signature header incomplete");
		return -1;
	}
	return 0;
bad:
	util_fmt(err, errsz, "malformed signature header");
	return -1;
}

int
sign_verify(const struct sign_hdr *h, const char *pk_hex, const char *method,
    const char *uri, const char *body_sha256_hex)
{
	char msg[4096 + 512];

	if (strlen(uri) > 4096 || canonical(msg, sizeof(msg), method, uri,
	    h->to, h->ts_ms, h->nonce, body_sha256_hex) == -1)
		return -1;
	return keys_verify(h->sig, pk_hex, msg, strlen(msg));
}

int
sign_response(char sig_hex[KEYS_SIG_HEX], const struct store_identity *self,
    const char *req_nonce, long status, const char *body_sha256_hex)
{
	char msg[256];

	if (util_fmt(msg, sizeof(msg), "meshsync-resp-v1\n%s\n%ld\n%s",
	    req_nonce, status, body_sha256_hex) == -1)
		return -1;
	return keys_sign(sig_hex, self->sk, msg, strlen(msg));
}

int
sign_response_verify(const char *sig_hex, const char *pk_hex,
    const char *req_nonce, long status, const char *body_sha256_hex)
{
	char msg[256];

	if (util_fmt(msg, sizeof(msg), "meshsync-resp-v1\n%s\n%ld\n%s",
	    req_nonce, status, body_sha256_hex) == -1)
		return -1;
	return keys_verify(sig_hex, pk_hex, msg, strlen(msg));
}
