/* keys.c - every use of libsodium in meshsync goes through here. */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int
keys_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void
keys_generate(char pk_hex[KEYS_PK_HEX], char sk_hex[KEYS_SK_HEX])
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];

	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(pk_hex, KEYS_PK_HEX, pk, sizeof(pk));
	sodium_bin2hex(sk_hex, KEYS_SK_HEX, sk, sizeof(sk));
	sodium_memzero(sk, sizeof(sk));
}

static int
unhex(unsigned char *out, size_t outlen, const char *hex)
{
	size_t got;

	if (hex == NULL || strlen(hex) != outlen * 2)
		return -1;
	if (sodium_hex2bin(out, outlen, hex, outlen * 2, NULL, &got,
	    NULL) != 0 || got != outlen)
		return -1;
	return 0;
}

int
keys_sign(char sig_hex[KEYS_SIG_HEX], const char *sk_hex, const void *msg,
    size_t len)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];

	if (unhex(sk, sizeof(sk), sk_hex) == -1)
		return -1;
	crypto_sign_detached(sig, NULL, msg, len, sk);
	sodium_memzero(sk, sizeof(sk));
	sodium_bin2hex(sig_hex, KEYS_SIG_HEX, sig, sizeof(sig));
	return 0;
}

int
keys_verify(const char *sig_hex, const char *pk_hex, const void *msg,
    size_t len)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];

	if (unhex(pk, sizeof(pk), pk_hex) == -1 ||
	    unhex(sig, sizeof(sig), sig_hex) == -1)
		return -1;
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

void
keys_sha256_hex(char out[KEYS_HASH_HEX], const void *buf, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(out, KEYS_HASH_HEX, h, sizeof(h));
}

int
keys_sha256_fd(char out[KEYS_HASH_HEX], int fd)
{
	crypto_hash_sha256_state st;
	unsigned char buf[65536], h[crypto_hash_sha256_BYTES];
	ssize_t n;

	crypto_hash_sha256_init(&st);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
	}
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(out, KEYS_HASH_HEX, h, sizeof(h));
	return 0;
}

void
keys_fingerprint(char *out, size_t outsz, const char *pk_hex)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	size_t o = 0;

	/* Hash first so the fingerprint covers the whole key. */
	crypto_hash_sha256(h, (const unsigned char *)pk_hex, strlen(pk_hex));
	for (size_t i = 0; i < 8 && o + 6 <= outsz; i++) {
		o += (size_t)snprintf(out + o, outsz - o, "%s%02x%02x",
		    i ? ":" : "", h[2 * i], h[2 * i + 1]);
	}
	if (outsz > 0 && o >= outsz)
		out[outsz - 1] = '\0';
}

int
keys_pw_hash(char out[KEYS_PWHASH_LEN], const char *password)
{
	return crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : -1;
}

int
keys_pw_verify(const char *hash, const char *password)
{
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0
	    ? 0 : -1;
}

int
keys_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return sodium_memcmp(a, b, la) == 0;
}
