/* events.h - live events: publish to the node's nchan channel, read by open dashboards. */
#ifndef MESHSYNC_EVENTS_H
#define MESHSYNC_EVENTS_H

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"

/*
 * Publish one event {"seq", "time", "kind", ...fields of `data`} to
 * nginx's nchan publisher on DIR/run/events.sock.  seq is a per-node
 * counter kept in the state DB, so a dashboard that sees a gap (its
 * resume point left nchan's buffer) knows to reload.  Takes ownership of
 * data (may be NULL).  Never blocks for long (short timeout) and never
 * fails the caller: an event is a courtesy, the state DB is the record.
 */
void	 events_publish(const struct conf *c, sqlite3 *state, const char *kind,
	    json_object *data);

#endif
