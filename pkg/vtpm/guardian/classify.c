/* classify.c: PREPARE: create, verify against the manifest, classify
 * (new, normal, restored, reset, missing), rebuild a lost manifest, repair
 * a bad backup; ephemeral state. Callers hold g->lock. */
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

/* Current is fine: make sure a good backup exists too. */
static void
check_backup(struct guardian *g, struct gd_vm *v, char *reason, size_t rlen)
{
	char           p[PATH_LEN], err[256];
	struct gd_info fi;
	const char    *what = NULL;
	size_t         l;

	if (!v->m.cur.present) {
		return;
	}
	if (v->m.bak.present) {
		gd_gen_path(v, v->m.bak.id, p, sizeof(p));
		if (gd_file_info(p, false, &fi) < 0) {
			what = fi.why;
		} else if (!fi.exists) {
			what = "absent";
		} else if (!gd_info_matches(&fi, &v->m.bak)) {
			what = fi.valid ? "sha256 mismatch" : fi.why;
		} else {
			return;
		}
		snprintf(err, sizeof(err), "%s", what);
		if (fi.exists) {
			const char *q[] = {p};
			gd_quarantine(g, v, "backup", q, 1);
		}
		log_warnx("vm %s: backup generation %" PRIu64 " is bad (%s)",
		          v->uuid, v->m.bak.id, err);
	} else {
		snprintf(err, sizeof(err), "none yet");
	}
	v->m.bak.present = false;
	l = strlen(reason);
	{
		char e2[256];
		if (gd_backup_copy(g, v, e2, sizeof(e2)) < 0) {
			log_warnx("vm %s: no backup: %s", v->uuid, e2);
			snprintf(reason + l, rlen - l,
			         "%sbackup %s; copy failed: %s", l ? "; " : "",
			         err, e2);
			return;
		}
	}
	if (strcmp(err, "none yet") != 0) {
		snprintf(
		    reason + l, rlen - l,
		    "%sbackup was bad (%s): replaced by a copy of the current "
		    "generation",
		    l ? "; " : "", err);
	}
}

/* swtpm's file cur is bad: put back the newest valid generation of ids
 * (fi then describes it). 0 (*cls restored, or fi still not valid when
 * none is left), -1 with reason. */
static int
rebuild_put_back(struct guardian *g, struct gd_vm *v, const uint64_t *ids,
                 int ng, const char *cur, const char *why, struct gd_info *fi,
                 int *cls, char *reason, size_t rlen)
{
	char           p[PATH_LEN], err[256];
	struct gd_info gi;

	for (int i = 0; i < ng; i++) {
		gd_gen_path(v, ids[i], p, sizeof(p));
		if (gd_file_info(p, false, &gi) == 0 && gi.valid) {
			if (gd_put_back(g, v, p, "current", err, sizeof(err)) <
			    0) {
				snprintf(reason, rlen, "%s", err);
				*cls = STATE_ERROR;
				return -1;
			}
			gd_file_info(cur, false, fi);
			snprintf(reason, rlen,
			         "manifest %s and current generation "
			         "%s: put "
			         "back generation %" PRIu64,
			         why, fi->exists ? "bad" : "absent", ids[i]);
			*cls = STATE_RESTORED;
			break;
		}
	}
	return 0;
}

/* The newest older valid generation with other content than the current
 * one becomes the backup. */
static void
rebuild_backup(struct gd_vm *v, const uint64_t *ids, int ng)
{
	char           p[PATH_LEN];
	struct gd_info gi;

	for (int i = 0; i < ng; i++) {
		gd_gen_path(v, ids[i], p, sizeof(p));
		if (gd_file_info(p, false, &gi) == 0 && gi.valid &&
		    memcmp(gi.sha, v->m.cur.sha, GD_SHA_LEN) != 0) {
			v->m.bak.present = true;
			v->m.bak.id = ids[i];
			v->m.bak.size = gi.size;
			memcpy(v->m.bak.sha, gi.sha, GD_SHA_LEN);
			v->m.bak.ino = gi.ino;
			v->m.bak.mtime_ns = gi.mtime_ns;
			v->m.bak.time = (int64_t) time(NULL);
			v->m.last_backup = v->m.bak.time;
			break;
		}
	}
}

/* Manifest lost or unusable: rebuild it from the files (structure only;
 * there is no recorded hash to compare with). */
static int
rebuild(struct guardian *g, struct gd_vm *v, const char *why, bool encrypted,
        int *cls, char *reason, size_t rlen)
{
	char           cur[PATH_LEN], mpath[PATH_LEN];
	char           err[256];
	struct gd_info fi;
	uint64_t       ids[64];
	int            ng;

	snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
	if (access(mpath, F_OK) == 0) {
		const char *q[] = {mpath};
		gd_quarantine(g, v, "manifest", q, 1);
	}
	gd_sfile(v, GD_PERMALL, cur, sizeof(cur));
	if (gd_file_info(cur, false, &fi) < 0) {
		snprintf(reason, rlen, "%s: %s", cur, fi.why);
		*cls = STATE_ERROR;
		return -1;
	}
	ng = gd_list_gens(v, ids, 64);
	gd_manifest_init(&v->m, v->uuid, fi.valid ? fi.encrypted : encrypted);
	v->m.active = true;
	for (int i = 0; i < ng; i++) {
		if (ids[i] + 1 > v->m.next_id) {
			v->m.next_id = ids[i] + 1;
		}
	}
	v->m.generation = (int64_t) v->m.next_id - 1;
	if (!fi.valid) {
		/* the swtpm file is bad too: newest valid generation back */
		if (rebuild_put_back(g, v, ids, ng, cur, why, &fi, cls, reason,
		                     rlen) < 0) {
			return -1;
		}
		if (!fi.valid) {
			if (!fi.exists && ng == 0) {
				snprintf(reason, rlen,
				         "new state (manifest %s)", why);
				*cls = STATE_NEW;
				v->m.classification = STATE_NEW;
				return 0;
			}
			snprintf(reason, rlen,
			         "manifest %s and no valid state file left",
			         why);
			*cls = STATE_RESET;
			return gd_do_reset(g, v, encrypted, STATE_RESET,
			                   reason);
		}
	} else {
		snprintf(reason, rlen,
		         "manifest %s: rebuilt from the state files (structure "
		         "checked, no recorded hash to compare)",
		         why);
		*cls = STATE_NORMAL;
	}
	v->m.encrypted = fi.encrypted;
	if (gd_link_current(v, &v->m.cur, &fi, err, sizeof(err)) < 0) {
		snprintf(reason, rlen, "%s", err);
		*cls = STATE_ERROR;
		return -1;
	}
	rebuild_backup(v, ids, ng);
	return 0;
}

/* Verify the current generation against the manifest; restore, reset or
 * report missing. */
/* No generation recorded yet: adopt swtpm's file when it is good, reset
 * when it is bad. fi: what reading it found (reused). */
static int
classify_unrecorded(struct guardian *g, struct gd_vm *v, struct gd_info *fi,
                    bool encrypted, int *cls, char *reason, size_t rlen)
{
	char err[256];

	if (!fi->exists) {
		*cls = STATE_NEW;
		snprintf(reason, rlen, "no state written yet");
		return 0;
	}
	if (fi->valid) {
		if (gd_link_current(v, &v->m.cur, fi, err, sizeof(err)) < 0) {
			snprintf(reason, rlen, "%s", err);
			*cls = STATE_ERROR;
			return -1;
		}
		v->m.encrypted = fi->encrypted;
		v->m.generation++;
		*cls = STATE_NORMAL;
		snprintf(reason, rlen, "unrecorded state file adopted");
		return 0;
	}
	snprintf(reason, rlen, "unrecorded state file is bad (%s)", fi->why);
	*cls = STATE_RESET;
	return gd_do_reset(g, v, encrypted, STATE_RESET, reason);
}

/* Copy generation cand (its verified file p) back as swtpm's current
 * file and make it the current generation; is_backup: it was the backup
 * and stays the backup. 0, or -1 with reason. */
static int
put_back_gen(struct guardian *g, struct gd_vm *v, const char *p,
             const struct gd_gen *cand, bool is_backup, char *reason,
             size_t rlen)
{
	char           err[256];
	struct gd_gen  good, nc;
	struct gd_info nf;
	uint64_t       oldcur;

	if (gd_put_back(g, v, p, "current", err, sizeof(err)) < 0) {
		snprintf(reason, rlen, "restore: %s", err);
		return -1;
	}
	good = *cand;
	oldcur = v->m.cur.id;
	if (gd_link_current(v, &nc, &nf, err, sizeof(err)) < 0 ||
	    !gd_info_matches(&nf, &good)) {
		snprintf(reason, rlen, "restore: %s", err);
		return -1;
	}
	if (is_backup) {
		v->m.bak = good; /* backup stays the backup */
	}
	v->m.cur = nc;
	gd_unlink_gen(v, oldcur);
	return 0;
}

static int
classify(struct guardian *g, struct gd_vm *v, bool encrypted, int *cls,
         char *reason, size_t rlen)
{
	char           cur[PATH_LEN], p[PATH_LEN], badcur[160];
	struct gd_info fi, ci;
	struct gd_gen *cand[2] = {&v->m.cur, &v->m.bak};
	const char    *cname[2] = {"current", "backup"};
	bool           any_files;

	gd_sfile(v, GD_PERMALL, cur, sizeof(cur));
	if (gd_file_info(cur, false, &fi) < 0) {
		snprintf(reason, rlen, "%s: %s", cur, fi.why);
		*cls = STATE_ERROR;
		return -1;
	}
	if (!v->m.cur.present) {
		return classify_unrecorded(g, v, &fi, encrypted, cls, reason,
		                           rlen);
	}
	if (gd_info_matches(&fi, &v->m.cur)) {
		*cls = STATE_NORMAL;
		v->m.encrypted = fi.valid ? fi.encrypted : v->m.encrypted;
		return 0;
	}
	snprintf(badcur, sizeof(badcur), "%s",
	         !fi.exists ? "absent"
	                    : (fi.valid ? "sha256 mismatch" : fi.why));
	any_files = fi.exists;
	for (int i = 0; i < 2; i++) {
		if (!cand[i]->present) {
			continue;
		}
		gd_gen_path(v, cand[i]->id, p, sizeof(p));
		if (gd_file_info(p, false, &ci) < 0 || !ci.exists) {
			continue;
		}
		any_files = true;
		if (!gd_info_matches(&ci, cand[i])) {
			log_warnx("vm %s: %s generation %" PRIu64 " is bad too "
			          "(%s)",
			          v->uuid, cname[i], cand[i]->id,
			          ci.valid ? "sha256 mismatch" : ci.why);
			continue;
		}
		if (put_back_gen(g, v, p, cand[i], i == 1, reason, rlen) < 0) {
			*cls = STATE_ERROR;
			return -1;
		}
		v->m.encrypted = ci.encrypted;
		*cls = STATE_RESTORED;
		snprintf(reason, rlen,
		         "current generation %s: put back the %s generation "
		         "(sha256 verified)",
		         badcur, i == 0 ? "last good" : "backup");
		log_warnx("vm %s: %s", v->uuid, reason);
		return 0;
	}
	if (!any_files) {
		*cls = STATE_MISSING;
		snprintf(reason, rlen,
		         "the manifest records generation %" PRId64
		         " but the state files are gone",
		         v->m.generation);
		return gd_do_reset(g, v, encrypted, STATE_MISSING, reason);
	}
	*cls = STATE_RESET;
	snprintf(reason, rlen, "current generation %s and no good backup left",
	         badcur);
	return gd_do_reset(g, v, encrypted, STATE_RESET, reason);
}

int
gd_prepare_ephemeral(struct guardian *g, struct gd_vm *v,
                     const struct guardian_req *rq, struct guardian_rep *rp)
{
	char err[REASON_LEN];

	if (mkdir_p(g->paths.ephemeral, 0711) < 0 ||
	    chmod(g->paths.ephemeral, 0711) < 0) {
		snprintf(err, sizeof(err), "mkdir %s: %s", g->paths.ephemeral,
		         strerror(errno));
		goto fail;
	}
	if (g->do_chown) {
		/* the swtpm uid must traverse <root>/run and <run> (mkdir_p
		 * made them 0700): add search permission, nothing else */
		char        up[PATH_LEN], *slash;
		struct stat st;
		snprintf(up, sizeof(up), "%s", g->paths.run);
		for (int i = 0; i < 2; i++) {
			if (stat(up, &st) == 0 && !(st.st_mode & S_IXOTH)) {
				chmod(up, (st.st_mode & 07777) | 0111);
			}
			if ((slash = strrchr(up, '/')) == NULL || slash == up) {
				break;
			}
			*slash = '\0';
		}
	}
	if (remove_tree(v->sdir) < 0) {
		snprintf(err, sizeof(err), "empty %s: %s", v->sdir,
		         strerror(errno));
		goto fail;
	}
	if (gd_ensure_sdir(g, v, err, sizeof(err)) < 0) {
		goto fail;
	}
	gd_manifest_init(&v->m, v->uuid, rq->encrypted);
	gd_fill_rep(v, rp, true, STATE_NEW, "ephemeral: fresh state");
	gd_publish(g, v, STATE_NEW, "ephemeral: fresh state every boot");
	return 0;
fail:
	log_warnx("vm %s: prepare ephemeral: %s", v->uuid, err);
	gd_fill_rep(v, rp, false, STATE_ERROR, err);
	gd_publish(g, v, STATE_ERROR, err);
	return 0;
}

/* The manifest, loaded and its state classified, or rebuilt from the
 * files when it is absent or unreadable. 0 with *cls and reason, or -1
 * with err. */
static int
load_or_rebuild(struct guardian *g, struct gd_vm *v, bool encrypted, int *cls,
                char *reason, size_t rlen, char *err, size_t errlen)
{
	char mpath[PATH_LEN];
	int  rc;

	snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
	rc = gd_manifest_load(mpath, &v->m, err, errlen);
	if (rc == 0 && strcasecmp(v->m.uuid, v->uuid) != 0) {
		snprintf(err, errlen, "belongs to VM %s", v->m.uuid);
		rc = -1;
		errno = EINVAL;
	}
	if (rc < 0) {
		char why[REASON_LEN];
		bool absent = errno == ENOENT;
		snprintf(why, sizeof(why), "%s", absent ? "absent" : err);
		if (!absent) {
			log_warnx("vm %s: manifest %s: %s", v->uuid, mpath,
			          err);
		}
		if (rebuild(g, v, why, encrypted, cls, reason, rlen) < 0) {
			snprintf(err, errlen, "%s", reason);
			return -1;
		}
		if (*cls == STATE_NEW) {
			gd_manifest_init(&v->m, v->uuid, encrypted);
			v->m.active = true;
			reason[0] = '\0';
		}
	} else {
		v->have_manifest = true;
		gd_gc_mdir(v);
		if (v->m.active) {
			/* swtpm may have written while nobody watched */
			gd_sync(g, v);
		}
		if (classify(g, v, encrypted, cls, reason, rlen) < 0) {
			snprintf(err, errlen, "%s", reason);
			return -1;
		}
	}
	return 0;
}

int
gd_prepare(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_get(g, rq->uuid, rq->mode);
	char          err[REASON_LEN] = "";
	char          reason[REASON_LEN] = "";
	int           cls = STATE_UNKNOWN;

	if (v == NULL) {
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		snprintf(rp->reason, sizeof(rp->reason), "out of memory");
		return 0;
	}
	v->purged = false;
	if (rq->mode == VTPM_MODE_EPHEMERAL) {
		return gd_prepare_ephemeral(g, v, rq, rp);
	}
	if (gd_ensure_sdir(g, v, err, sizeof(err)) < 0 ||
	    gd_scan_foreign(v, err, sizeof(err)) < 0) {
		goto fail;
	}
	if (mkdir_p(v->mdir, 0700) < 0) {
		snprintf(err, sizeof(err), "mkdir %s: %s", v->mdir,
		         strerror(errno));
		goto fail;
	}
	if (load_or_rebuild(g, v, rq->encrypted, &cls, reason, sizeof(reason),
	                    err, sizeof(err)) < 0) {
		goto fail;
	}
	if (cls == STATE_NORMAL || cls == STATE_RESTORED) {
		check_backup(g, v, reason, sizeof(reason));
	}
	if (cls == STATE_NEW) {
		v->m.encrypted = rq->encrypted;
	}
	v->m.active = true;
	v->m.classification = cls;
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", reason);
	/* The boot path (new, normal) writes the manifest atomically but
	 * without fsync: it only marks the VM active. Lost in a power cut, the
	 * old manifest still names durable, verified generations; the first
	 * commit of this boot makes "active" durable. A restore or reset is
	 * written durably. */
	if ((cls == STATE_NEW || cls == STATE_NORMAL ? gd_save_quick(g, v)
	                                             : gd_save(g, v)) < 0) {
		snprintf(err, sizeof(err), "write manifest in %s: %s", v->mdir,
		         strerror(errno));
		goto fail;
	}
	gd_gc_mdir(v);
	if (gd_watch_add(g, v) < 0) {
		snprintf(err, sizeof(err), "cannot watch %s", v->sdir);
		goto fail;
	}
	gd_fill_rep(v, rp, true, cls, reason);
	gd_publish(g, v, cls, reason);
	return 0;
fail:
	log_warnx("vm %s: prepare: %s", v->uuid, err);
	gd_fill_rep(v, rp, false, STATE_ERROR, err);
	gd_publish(g, v, STATE_ERROR, err);
	return 0;
}
