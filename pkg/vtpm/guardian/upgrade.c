/*
 * upgrade.c: UPGRADE, a plain state becomes encrypted in place.
 *
 * The launcher found a plain state while a key is available; it has
 * re-written the same TPM state encrypted into <state>/.upgrade/ (swtpm
 * with the key, the plain state blob set into it). Here that file becomes
 * the current generation, so that a crash at any point leaves either the
 * old plain state or the new encrypted one (docs/guardian.md):
 *
 *   1. check it: a valid swtpm blob, written encrypted
 *   2. link it as g<a> (the new current) and copy it as g<b> (its backup),
 *      both durable
 *   3. manifest (durable): current g<a>, backup g<b>, encrypted
 *   4. drop swtpm's plain volatile/save state (a key could not read it)
 *   5. rename it over tpm2-00.permall, fsync the state directory
 *   6. unlink the plain g files and the staging directories
 *
 * Before 3 the manifest names the plain generations (the staging files are
 * garbage); after 3 and before 5 swtpm's file is the plain one, which the
 * next prepare adopts as a new (plain) generation, so the launcher upgrades
 * again; after 5 everything agrees. Callers hold g->lock.
 */
/* Error and reason strings are cut at REASON_LEN on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void
gd_upgrade_cleanup(struct gd_vm *v)
{
	char p[PATH_LEN];

	gd_sfile(v, UPGRADE_DIR, p, sizeof(p));
	(void) remove_tree(p);
	gd_sfile(v, UPGRADE_SRC_DIR, p, sizeof(p));
	(void) remove_tree(p);
}

static int
refuse(struct gd_vm *v, struct guardian_rep *rp, const char *fmt, const char *a,
       const char *b)
{
	char why[REASON_LEN];

	snprintf(why, sizeof(why), fmt, a, b);
	log_warnx("vm %s: upgrade refused: %s", v->uuid, why);
	gd_fill_rep(v, rp, false, v->m.classification, why);
	return 0;
}

int
gd_upgrade(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm      *v = gd_vm_find(g, rq->uuid);
	char               src[PATH_LEN], cur[PATH_LEN], a[PATH_LEN];
	char               err[256] = "", reason[REASON_LEN];
	struct gd_info     fi;
	struct gd_manifest old;
	struct gd_gen      ng;
	static const char *plain_extra[] = {"tpm2-00.volatilestate",
	                                    "tpm2-00.savestate"};

	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	rp->classification = STATE_UNKNOWN;
	if (v == NULL || v->purged || v->mode != VTPM_MODE_PERSISTENT ||
	    !v->have_manifest || !v->m.active) {
		snprintf(rp->reason, sizeof(rp->reason),
		         "upgrade: VM %s has no prepared persistent state",
		         rq->uuid);
		return 0;
	}
	gd_sync(g, v); /* nothing of swtpm's may be left uncommitted */
	if (v->m.encrypted) {
		return refuse(v, rp, "the state is encrypted already%s%s", "",
		              "");
	}
	if (path_join(src, sizeof(src), "%s/%s/%s", v->sdir, UPGRADE_DIR,
	              GD_PERMALL) < 0) {
		return refuse(v, rp, "%s: path too long%s", v->sdir, "");
	}
	gd_sfile(v, GD_PERMALL, cur, sizeof(cur));
	/* 1 */
	if (gd_file_info(src, true, &fi) < 0 || !fi.exists) {
		return refuse(v, rp, "%s: %s", src,
		              fi.exists ? fi.why : "absent");
	}
	if (!fi.valid || !fi.encrypted) {
		return refuse(v, rp, "%s: %s", src,
		              !fi.valid ? fi.why : "not written encrypted");
	}
	/* 2: g<a> is the very inode that becomes swtpm's file */
	old = v->m;
	gd_gen_path(v, v->m.next_id, a, sizeof(a));
	unlink(a);
	if (link(src, a) < 0) {
		snprintf(err, sizeof(err), "link %s %s: %s", src, a,
		         strerror(errno));
		goto fail;
	}
	memset(&ng, 0, sizeof(ng));
	ng.present = true;
	ng.id = v->m.next_id++;
	ng.size = fi.size;
	memcpy(ng.sha, fi.sha, GD_SHA_LEN);
	ng.time = (int64_t) time(NULL);
	ng.ino = fi.ino;
	ng.mtime_ns = fi.mtime_ns;
	v->m.cur = ng;
	if (gd_backup_copy(g, v, err, sizeof(err)) < 0 ||
	    fsync_dir(v->mdir) < 0) {
		if (err[0] == '\0') {
			snprintf(err, sizeof(err), "fsync %s: %s", v->mdir,
			         strerror(errno));
		}
		goto fail;
	}
	crash_point("upgrade-linked");
	/* 3 */
	v->m.encrypted = true;
	v->m.generation++;
	v->m.classification = STATE_UPGRADED;
	snprintf(reason, sizeof(reason),
	         "plain state encrypted in place: generation %" PRIu64
	         " (plain) became %" PRIu64 " (encrypted)",
	         old.cur.id, ng.id);
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", reason);
	if (gd_save(g, v) < 0) {
		snprintf(err, sizeof(err), "manifest: %s", strerror(errno));
		goto fail;
	}
	crash_point("upgrade-manifest");
	/* 4 */
	for (size_t i = 0; i < sizeof(plain_extra) / sizeof(plain_extra[0]);
	     i++) {
		char p[PATH_LEN];

		gd_sfile(v, plain_extra[i], p, sizeof(p));
		if (unlink(p) == 0) {
			log_info("vm %s: dropped plain %s (no key reads it)",
			         v->uuid, plain_extra[i]);
		}
	}
	/* 5 */
	if (rename(src, cur) < 0 || fsync_dir(v->sdir) < 0) {
		/* the manifest names the encrypted file already: the next
		 * prepare adopts swtpm's (plain) file again, nothing lost */
		snprintf(err, sizeof(err), "rename %s %s: %s", src, cur,
		         strerror(errno));
		log_warnx("vm %s: upgrade: %s", v->uuid, err);
		gd_fill_rep(v, rp, false, STATE_ERROR, err);
		return 0;
	}
	crash_point("upgrade-renamed");
	/* 6 */
	if (old.cur.present) {
		gd_unlink_gen(v, old.cur.id);
	}
	if (old.bak.present) {
		gd_unlink_gen(v, old.bak.id);
	}
	gd_upgrade_cleanup(v);
	(void) fsync_dir(v->mdir);
	log_warnx("vm %s: %s", v->uuid, reason);
	gd_fill_rep(v, rp, true, STATE_UPGRADED, reason);
	gd_publish(g, v, STATE_UPGRADED, reason);
	return 0;
fail:
	/* nothing the manifest names changed: drop what was made */
	if (v->m.cur.present && v->m.cur.id != old.cur.id) {
		gd_gen_path(v, v->m.cur.id, a, sizeof(a));
		unlink(a);
	}
	if (v->m.bak.present && v->m.bak.id != old.bak.id) {
		gd_gen_path(v, v->m.bak.id, a, sizeof(a));
		unlink(a);
	}
	{
		uint64_t next = v->m.next_id;

		v->m = old;
		v->m.next_id = next; /* ids only grow */
	}
	log_warnx("vm %s: upgrade failed: %s", v->uuid, err);
	gd_fill_rep(v, rp, false, STATE_ERROR, err);
	return 0;
}
