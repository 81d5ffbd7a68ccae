/* jget.h - reading optional members of peer and client JSON. */
#ifndef MESHSYNC_JGET_H
#define MESHSYNC_JGET_H

#include <stdint.h>

#include <json-c/json.h>

/* o[key] when it is a string, else dflt (o may be NULL). */
const char	*jget_str(json_object *o, const char *key, const char *dflt);
/* o[key] when it is an integer, else dflt (o may be NULL). */
int64_t		 jget_int(json_object *o, const char *key, int64_t dflt);
/* o[key] as json-c reads it as a boolean, 0 when absent (o may be NULL). */
int		 jget_bool(json_object *o, const char *key);

/*
 * Required members, checked.  A string must hold no NUL byte (its C string
 * is then all of the JSON string) and at most maxlen bytes; an integer
 * must lie in [min, max] as sent (json-c clamps what overflows int64).
 */
const char	*jval_cstr(json_object *v, size_t maxlen);
const char	*jget_cstr(json_object *o, const char *key, size_t maxlen);
int		 jget_range(json_object *o, const char *key, int64_t min,
		    int64_t max, int64_t *out);
int		 jval_range(json_object *v, int64_t min, int64_t max,
		    int64_t *out);

#endif
