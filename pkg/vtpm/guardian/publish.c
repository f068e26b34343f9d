/* publish.c: the VtpmStateHealth topic. The request handlers (classify.c,
 * ops.c) and the watcher (watch.c) record what they decided here; nothing
 * in this file calls back up into them. */
/* Reason strings are cut at REASON_LEN on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"
#include "pubsub.h"

#include <stdio.h>
#include <string.h>

#define GEN_PUBLISH_MS 500 /* generation-only updates: at most this often */

static void
publish_now(struct guardian *g, struct gd_vm *v)
{
	if (g->pub != NULL && topic_pub_set(g->pub, v->uuid, &v->health) < 0) {
		log_warnx("vm %s: publish VtpmStateHealth failed", v->uuid);
	}
}

int
gd_publish_open(struct guardian *g)
{
	if (topic_pub_open(&g->pub, g->paths.run, MSG_VTPM_STATE_HEALTH, NULL) <
	    0) {
		log_warnx("open topic VtpmStateHealth in %s", g->paths.run);
		return -1;
	}
	return 0;
}

void
gd_publish_close(struct guardian *g)
{
	topic_pub_close(g->pub);
	g->pub = NULL;
}

void
gd_publish(struct guardian *g, struct gd_vm *v, int cls, const char *reason)
{
	struct vtpm_state_health h;
	bool                     only_counters;

	memset(&h, 0, sizeof(h));
	snprintf(h.uuid, sizeof(h.uuid), "%s", v->uuid);
	h.classification = cls;
	h.generation = v->m.generation;
	h.last_backup = v->m.last_backup;
	snprintf(h.reason, sizeof(h.reason), "%s", reason ? reason : "");
	only_counters = v->health.classification == h.classification &&
	                strcmp(v->health.reason, h.reason) == 0 &&
	                strcmp(v->health.uuid, h.uuid) == 0;
	v->health = h;
	if (only_counters && now_ms() - v->pub_ms < GEN_PUBLISH_MS) {
		v->pub_dirty = true; /* gd_publish_due publishes it */
		return;
	}
	v->pub_ms = now_ms();
	v->pub_dirty = false;
	publish_now(g, v);
}

void
gd_publish_due(struct guardian *g, struct gd_vm *v)
{
	if (v->pub_dirty && now_ms() - v->pub_ms >= GEN_PUBLISH_MS) {
		v->pub_ms = now_ms();
		v->pub_dirty = false;
		publish_now(g, v);
	}
}

void
gd_publish_delete(struct guardian *g, struct gd_vm *v)
{
	if (g->pub != NULL) {
		topic_pub_delete(g->pub, v->uuid);
	}
}
