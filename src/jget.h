/* jget.h - reading optional members of peer and client JSON. */
#ifndef MESHSYNC_JGET_H
#define MESHSYNC_JGET_H

#include <stdint.h>

#include <json-c/json.h>

/* o[key] when it is a string, else dflt (o may be NULL). */
const char	*jget_str(json_object *o, const char *key, const char *dflt);
/* o[key] when it is an integer, else dflt (o may be NULL). */
int64_t		 jget_int(json_object *o, const char *key, int64_t dflt);

#endif
