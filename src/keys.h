/* keys.h - libsodium wrappers: node identity, signatures, password and content hashes. */
#ifndef MESHSYNC_KEYS_H
#define MESHSYNC_KEYS_H

#include <stddef.h>

#include <sodium.h>

#define KEYS_PK_HEX	(crypto_sign_PUBLICKEYBYTES * 2 + 1)
#define KEYS_SK_HEX	(crypto_sign_SECRETKEYBYTES * 2 + 1)
#define KEYS_SIG_HEX	(crypto_sign_BYTES * 2 + 1)
#define KEYS_HASH_HEX	(crypto_hash_sha256_BYTES * 2 + 1)
#define KEYS_PWHASH_LEN	crypto_pwhash_STRBYTES

/* Initialise libsodium.  Returns 0, or -1 (then nothing here is usable). */
int	 keys_init(void);

/* A new Ed25519 key pair, both as lowercase hex. */
void	 keys_generate(char pk_hex[KEYS_PK_HEX], char sk_hex[KEYS_SK_HEX]);

/* Detached signature of msg with the hex secret key.  Returns 0 or -1
 * when the key is malformed. */
int	 keys_sign(char sig_hex[KEYS_SIG_HEX], const char *sk_hex,
	    const void *msg, size_t len);

/* 0 when sig_hex is a valid signature of msg under pk_hex, -1 otherwise
 * (malformed key or signature included). */
int	 keys_verify(const char *sig_hex, const char *pk_hex, const void *msg,
	    size_t len);

/* SHA-256 of buf as hex. */
void	 keys_sha256_hex(char out[KEYS_HASH_HEX], const void *buf, size_t len);

/* SHA-256 of everything readable from fd (from its current offset), in
 * constant memory.  Returns 0, or -1 on a read error. */
int	 keys_sha256_fd(char out[KEYS_HASH_HEX], int fd);

/* A short human-checkable fingerprint of a public key ("ab12:cd34:..."),
 * for confirming a pin by eye. */
void	 keys_fingerprint(char *out, size_t outsz, const char *pk_hex);

/* Argon2id hash string of a password (libsodium's interactive limits).
 * Returns 0, or -1 when out of memory. */
int	 keys_pw_hash(char out[KEYS_PWHASH_LEN], const char *password);

/* 0 when password matches the stored hash string, -1 otherwise. */
int	 keys_pw_verify(const char *hash, const char *password);

/* Constant-time string equality (for tokens); 1 when equal. */
int	 keys_streq(const char *a, const char *b);

#endif
