/* jget.c - reading optional members of peer and client JSON. */
#include "jget.h"

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
