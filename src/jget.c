/* jget.c - reading optional members of peer and client JSON. */
#include "jget.h"

#include <errno.h>
#include <string.h>

const char *
jget_str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return dflt;
}

int64_t
jget_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	return dflt;
}

int
jget_bool(json_object *o, const char *key)
{
	json_object *v;

	return o != NULL && json_object_object_get_ex(o, key, &v) &&
	    json_object_get_boolean(v);
}

const char *
jval_cstr(json_object *v, size_t maxlen)
{
	const char *s;
	size_t n;

	if (!json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n > maxlen || strlen(s) != n)
		return NULL;
	return s;
}

const char *
jget_cstr(json_object *o, const char *key, size_t maxlen)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return jval_cstr(v, maxlen);
}

int
jget_range(json_object *o, const char *key, int64_t min, int64_t max,
    int64_t *out)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return -1;
	return jval_range(v, min, max, out);
}

int
jval_range(json_object *v, int64_t min, int64_t max, int64_t *out)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	n = json_object_get_int64(v);
	if (errno != 0 || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}
