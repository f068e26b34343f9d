/* ops.c: the other requests (restore, reset, release, purge, query) and
 * the startup load of every manifest. Callers hold g->lock. */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"
#include "pubsub.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Find a VM the request may act on: known and persistent with a manifest,
 * loading it from disk when needed. */
static struct gd_vm *
known_vm(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp, const char *op)
{
	struct gd_vm *v = gd_vm_find(g, rq->uuid);

	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	rp->classification = STATE_UNKNOWN;
	if (v == NULL || v->purged ||
	    (v->mode == VTPM_MODE_PERSISTENT && !v->have_manifest)) {
		snprintf(rp->reason, sizeof(rp->reason),
		         "%s: unknown VM %s: no state (prepare it first)", op,
		         rq->uuid);
		log_warnx("vm %s: %s", rq->uuid, rp->reason);
		return NULL;
	}
	return v;
}

int
gd_restore(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm  *v = known_vm(g, rq, rp, "restore");
	char           p[PATH_LEN], err[256], reason[REASON_LEN];
	struct gd_info bi, nf;
	struct gd_gen  nc;
	uint64_t       oldcur;

	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		gd_fill_rep(v, rp, false, STATE_NEW,
		            "restore: ephemeral state has no backup");
		return 0;
	}
	gd_sync(g, v);
	if (!v->m.bak.present ||
	    memcmp(v->m.bak.sha, v->m.cur.sha, GD_SHA_LEN) == 0) {
		snprintf(err, sizeof(err),
		         "restore: no backup that differs from the rejected "
		         "generation");
		log_warnx("vm %s: %s", v->uuid, err);
		gd_fill_rep(v, rp, false, v->m.classification, err);
		return 0;
	}
	gd_gen_path(v, v->m.bak.id, p, sizeof(p));
	if (gd_file_info(p, false, &bi) < 0 ||
	    !gd_info_matches(&bi, &v->m.bak)) {
		snprintf(err, sizeof(err), "restore: backup %s is bad (%s)", p,
		         bi.exists ? bi.why : "absent");
		log_warnx("vm %s: %s", v->uuid, err);
		gd_fill_rep(v, rp, false, v->m.classification, err);
		return 0;
	}
	if (gd_put_back(g, v, p, "rejected", err, sizeof(err)) < 0 ||
	    gd_link_current(v, &nc, &nf, err, sizeof(err)) < 0) {
		gd_fill_rep(v, rp, false, STATE_ERROR, err);
		gd_publish(g, v, STATE_ERROR, err);
		return 0;
	}
	oldcur = v->m.cur.id;
	v->m.cur = nc;
	gd_unlink_gen(v, oldcur);
	v->m.encrypted = nf.encrypted;
	v->m.generation++;
	snprintf(reason, sizeof(reason),
	         "swtpm rejected generation %" PRIu64
	         ": put back backup generation "
	         "%" PRIu64,
	         oldcur, v->m.bak.id);
	log_warnx("vm %s: %s", v->uuid, reason);
	v->m.classification = STATE_RESTORED;
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", reason);
	if (gd_save(g, v) < 0) {
		v->pending = true;
	}
	gd_fill_rep(v, rp, true, STATE_RESTORED, reason);
	gd_publish(g, v, STATE_RESTORED, reason);
	return 0;
}

int
gd_reset(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = known_vm(g, rq, rp, "reset");
	char          reason[REASON_LEN];

	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		return gd_prepare_ephemeral(g, v, rq, rp);
	}
	snprintf(reason, sizeof(reason),
	         "requested after swtpm rejected generation %" PRIu64
	         " and its backup",
	         v->m.cur.id);
	gd_do_reset(g, v, rq->encrypted, STATE_RESET, reason);
	v->m.active = true;
	if (gd_save(g, v) < 0) {
		gd_fill_rep(v, rp, false, STATE_ERROR,
		            "reset: manifest write failed");
		gd_publish(g, v, STATE_ERROR, "reset: manifest write failed");
		return 0;
	}
	gd_fill_rep(v, rp, true, STATE_RESET, reason);
	gd_publish(g, v, STATE_RESET, reason);
	return 0;
}

int
gd_release(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm *v;
	char          reason[REASON_LEN];

	if (rq->mode == VTPM_MODE_EPHEMERAL &&
	    gd_vm_find(g, rq->uuid) == NULL) {
		/* ephemeral state has nothing to commit, even if we restarted
		 */
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		rp->ok = true;
		rp->classification = STATE_UNKNOWN;
		return 0;
	}
	v = known_vm(g, rq, rp, "release");
	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		gd_fill_rep(v, rp, true, v->health.classification, "");
		return 0;
	}
	if (gd_sync(g, v) < 0) {
		/* keep active: the next prepare catches up first */
		snprintf(
		    reason, sizeof(reason),
		    "release: last generation not committed (%s); previous "
		    "generation %" PRIu64 " stays valid",
		    v->health.reason, v->m.cur.id);
		gd_fill_rep(v, rp, false, STATE_ERROR, reason);
		return 0;
	}
	fsync_dir(v->sdir);
	gd_watch_rm(g, v);
	v->m.active = false;
	if (gd_save(g, v) < 0) {
		v->m.active = true;
		snprintf(reason, sizeof(reason),
		         "release: manifest write failed: %s", strerror(errno));
		gd_fill_rep(v, rp, false, STATE_ERROR, reason);
		gd_publish(g, v, STATE_ERROR, reason);
		return 0;
	}
	snprintf(reason, sizeof(reason),
	         "released: generation %" PRId64 " committed", v->m.generation);
	log_info("vm %s: %s", v->uuid, reason);
	gd_fill_rep(v, rp, true, v->m.classification, reason);
	gd_publish(g, v, v->m.classification, v->m.reason);
	return 0;
}

int
gd_purge(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_get(
	    g, rq->uuid,
	    gd_vm_find(g, rq->uuid) ? gd_vm_find(g, rq->uuid)->mode : rq->mode);
	char        p[PATH_LEN];
	const char *fail = NULL;
	char        err[REASON_LEN];

	if (v == NULL) {
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		snprintf(rp->reason, sizeof(rp->reason), "out of memory");
		return 0;
	}
	gd_watch_rm(g, v);
	/* both modes' directories and ours: everything of this VM */
	if (paths_state_dir(&g->paths, false, v->uuid, p, sizeof(p)) < 0 ||
	    remove_tree(p) < 0) {
		fail = p;
	}
	if ((paths_state_dir(&g->paths, true, v->uuid, p, sizeof(p)) < 0 ||
	     remove_tree(p) < 0) &&
	    fail == NULL) {
		fail = p;
	}
	snprintf(p, sizeof(p), "%s/%s", g->gdir, v->uuid);
	if (remove_tree(p) < 0 && fail == NULL) {
		fail = p;
	}
	fsync_dir(g->paths.state);
	fsync_dir(g->gdir);
	if (fail != NULL) {
		snprintf(err, sizeof(err), "purge: remove %s: %s", fail,
		         strerror(errno));
		log_warnx("vm %s: %s", v->uuid, err);
		gd_fill_rep(v, rp, false, STATE_ERROR, err);
		gd_publish(g, v, STATE_ERROR, err);
		return 0;
	}
	v->have_manifest = false;
	v->pending = false;
	v->purged = true;
	v->purged_at = now_ms();
	log_info("vm %s: purged (state, backups, quarantine)", v->uuid);
	gd_fill_rep(v, rp, true, STATE_PURGED,
	            "state, backups and quarantine "
	            "removed");
	rp->generation = 0;
	gd_publish(g, v, STATE_PURGED, "removed on delete");
	return 0;
}

int
gd_query(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_find(g, rq->uuid);

	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	if (v == NULL) {
		rp->classification = STATE_UNKNOWN;
		snprintf(rp->reason, sizeof(rp->reason),
		         "query: unknown VM %s: no state", rq->uuid);
		return 0;
	}
	gd_fill_rep(v, rp, true, v->health.classification, v->health.reason);
	return 0;
}

int
gd_load_all(struct guardian *g)
{
	DIR           *d = opendir(g->gdir);
	struct dirent *e;
	char           mpath[PATH_LEN], err[256];

	if (d == NULL) {
		log_warn("opendir %s", g->gdir);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct gd_vm *v;
		if (!uuid_valid(e->d_name)) {
			continue;
		}
		v = gd_vm_get(g, e->d_name, VTPM_MODE_PERSISTENT);
		if (v == NULL) {
			continue;
		}
		snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
		if (gd_manifest_load(mpath, &v->m, err, sizeof(err)) < 0 ||
		    strcasecmp(v->m.uuid, v->uuid) != 0) {
			log_warnx("vm %s: manifest %s: %s: checked on the next "
			          "prepare",
			          v->uuid, mpath,
			          errno == EINVAL ? err : "absent");
			continue;
		}
		v->have_manifest = true;
		gd_gc_mdir(v);
		if (v->m.active) {
			log_info(
			    "vm %s: active at the last stop: watching again",
			    v->uuid);
			if (gd_watch_add(g, v) < 0) {
				continue;
			}
		}
		gd_publish(g, v, v->m.classification, v->m.reason);
	}
	closedir(d);
	return 0;
}
