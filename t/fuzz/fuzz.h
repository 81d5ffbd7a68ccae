/* fuzz.h - what the libFuzzer targets of t/fuzz share. */
#ifndef MESHSYNC_FUZZ_H
#define MESHSYNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define FUZZ_NOW_MS	1800000000000LL

/* The input as JSON, as a request body would be read, or NULL when it is
 * longer than max bytes or not JSON. */
static inline json_object *
fuzz_json(const uint8_t *data, size_t size, size_t max)
{
	struct json_tokener *tok;
	json_object *j;

	if (size > max || (tok = json_tokener_new()) == NULL)
		return NULL;
	j = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	return j;
}

#endif
