/* serve.c: GuardianRequest dispatch (service "guardian") to the handlers
 * in classify.c and ops.c, and the loop's periodic tick. Top of the
 * guardian: nothing below calls into this file. */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"
#include "pubsub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
gd_tick(struct guardian *g)
{
	struct gd_vm **pv, *v;

	pthread_mutex_lock(&g->lock);
	gd_rescan(g, true);
	for (pv = &g->vms; (v = *pv) != NULL;) {
		if (v->purged && now_ms() - v->purged_at > GD_PURGED_KEEP_MS) {
			gd_publish_delete(g, v);
			*pv = v->next;
			free(v);
			continue;
		}
		gd_publish_due(g, v);
		pv = &v->next;
	}
	pthread_mutex_unlock(&g->lock);
}

int
gd_request(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	int rc;

	memset(rp, 0, sizeof(*rp));
	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	rp->classification = STATE_UNKNOWN;
	if (!uuid_valid(rq->uuid)) {
		snprintf(rp->reason, sizeof(rp->reason), "bad uuid");
		return 0;
	}
	pthread_mutex_lock(&g->lock);
	switch (rq->op) {
	case GOP_PREPARE:
		rc = gd_prepare(g, rq, rp);
		break;
	case GOP_RESTORE:
		rc = gd_restore(g, rq, rp);
		break;
	case GOP_RESET:
		rc = gd_reset(g, rq, rp);
		break;
	case GOP_RELEASE:
		rc = gd_release(g, rq, rp);
		break;
	case GOP_PURGE:
		rc = gd_purge(g, rq, rp);
		break;
	case GOP_QUERY:
		rc = gd_query(g, rq, rp);
		break;
	default:
		snprintf(rp->reason, sizeof(rp->reason), "unknown op %d",
		         rq->op);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&g->lock);
	if (rq->op != GOP_QUERY) {
		log_info("vm %s: %s (%s%s) -> %s, %s, generation %" PRId64
		         "%s%s",
		         rq->uuid, guardian_op_name(rq->op),
		         vtpm_mode_name(rq->mode),
		         rq->encrypted ? ", encrypted" : "",
		         rp->ok ? "ok" : "failed",
		         state_class_name(rp->classification), rp->generation,
		         rp->reason[0] ? ": " : "", rp->reason);
	}
	return rc;
}

static int
handler(void *arg, enum msg_type t, const void *req, uid_t peer_uid,
        enum msg_type *rt, void *rep, char *err, size_t errlen)
{
	(void) peer_uid;
	if (t != MSG_GUARDIAN_REQ) {
		snprintf(err, errlen, "guardian serves GuardianRequest only");
		return -1;
	}
	*rt = MSG_GUARDIAN_REP;
	return gd_request(arg, req, rep);
}

int
gd_serve_open(struct guardian *g, struct req_server **srv)
{
	static const enum msg_type accept[] = {MSG_GUARDIAN_REQ, MSG_NONE};

	if (gd_publish_open(g) < 0) {
		return -1;
	}
	if (req_server_open(srv, g->paths.run, "guardian", accept, 2, NULL,
	                    handler, g) < 0) {
		log_warnx("open service guardian in %s", g->paths.run);
		gd_publish_close(g);
		return -1;
	}
	return 0;
}
