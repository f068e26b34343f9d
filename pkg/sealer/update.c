/*
 * update.c: planned OS updates. Keys survive a legitimate update
 * and are withheld after a tampered one.
 *
 * Announce (before the update agent reboots into the new image): unseal
 * under the policy that holds now, seal the master twice: to the current
 * values alone (the active blob, master.sealed.json) and to a PolicyOR of
 * current OR predicted values (the pending blob, master.pending.json).
 * Both are proven by an unseal before they are written; the old files stay
 * until then, so a crash at any step leaves a working blob.
 *
 * Broker start with a pending blob: the PCRs hold the predicted values ->
 * commit (reseal to them alone, drop the OR); the old values -> count the
 * boot (TPM resetCount changed) and drop the pending blob after
 * --pending-boots boots (rollback accepted); neither -> keep everything
 * and refuse (policy-mismatch).
 */
#include "sealer.h"
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct update {
	struct broker     *b;
	struct req_server *srv;
	struct escrow     *esc; /* NULL: escrow off */
};

/* ---- on the TPM ---- */

static int
reset_count(struct tpm *t, uint32_t *out, char *err, size_t errlen)
{
	TPMS_TIME_INFO *ti = NULL;
	TSS2_RC         rc;
	char            rcs[128];

	TPM_RETRY(rc, Esys_ReadClock(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
	                             ESYS_TR_NONE, &ti));
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "ReadClock: %s",
		         tek_rc_str(rc, rcs, sizeof(rcs)));
		return -1;
	}
	*out = ti->clockInfo.resetCount;
	Esys_Free(ti);
	return 0;
}

/* Seal master to mask (predicted == NULL: current values alone), then
 * prove the new blob by an unseal now. */
static int
seal_proven(struct tpm *t, uint32_t mask, const uint8_t *master,
            const uint8_t (*predicted)[32], struct seal_blob *out,
            uint8_t *check, char *err, size_t errlen)
{
	TSS2_RC rc;

	if (seal_create_or(t, mask, master, predicted, out, &rc, err, errlen) <
	        0 ||
	    seal_unseal(t, out, check, &rc, err, errlen) < 0) {
		return -1;
	}
	if (memcmp(master, check, SEAL_MASTER_LEN) != 0) {
		snprintf(err, errlen, "new sealed blob unseals to another key");
		return -1;
	}
	return 0;
}

/* PCRs hold the predicted values: reseal to them alone. tpm lock held. */
static int
commit(struct update *u, struct tpm *t, const struct seal_blob *p)
{
	struct seal_blob c;
	uint8_t         *master;
	char             err[REASON_LEN], pcrs[PCRS_LEN];
	TSS2_RC          rc;
	int              ret = -1;

	if ((master = secmem_alloc(2 * SEAL_MASTER_LEN)) == NULL) {
		log_warnx("update commit: cannot lock memory for the key");
		return -1;
	}
	if (seal_unseal(t, p, master, &rc, err, sizeof(err)) < 0) {
		log_warnx("update commit: unseal of %s: %s", u->b->pendpath,
		          err);
		goto out;
	}
	if (seal_proven(t, p->mask, master, NULL, &c, master + SEAL_MASTER_LEN,
	                err, sizeof(err)) < 0) {
		log_warnx("update commit: reseal to the new values: %s", err);
		goto out;
	}
	update_crash_point("commit-sealed");
	if (seal_blob_store(u->b->sealpath, &c) < 0) {
		log_warn("update commit: cannot write %s", u->b->sealpath);
		goto out;
	}
	update_crash_point("commit-written");
	broker_drop_pending(u->b);
	broker_set_blob(u->b, &c);
	pcrset_format(c.mask, pcrs, sizeof(pcrs));
	log_info("update committed: the PCRs hold the predicted values; master "
	         "resealed to them alone (PCRs %s), the old branch is dropped",
	         pcrs);
	ret = 0;
out:
	secmem_free(master, 2 * SEAL_MASTER_LEN);
	return ret;
}

/* A broker start with a pending update. */
static void
update_boot(struct update *u)
{
	struct seal_blob    p;
	struct update_state st;
	uint8_t             now[SEAL_PCR_MAX][32];
	uint32_t            rst = 0;
	char                err[REASON_LEN];
	struct tpm         *t;
	TSS2_RC             rc;
	int                 match, boots = u->b->cfg.pending_boots;
	enum update_action  act;

	if (access(u->b->pendpath, F_OK) < 0) {
		if (access(u->b->statepath, F_OK) == 0) {
			if (unlink(u->b->statepath) < 0 && errno != ENOENT) {
				log_warn("unlink %s", u->b->statepath);
			} /* announce cut short */
		}
		return;
	}
	if ((t = broker_tpm_lock(u->b)) == NULL) {
		log_warnx("pending update in %s: no hardware TPM now; decided "
		          "on a later start",
		          u->b->pendpath);
		goto out;
	}
	if (seal_blob_load(u->b->pendpath, &p, err, sizeof(err)) < 0) {
		log_warnx("pending update: %s: using the active blob", err);
		goto out;
	}
	if (seal_pcr_read(t, p.mask, now, &rc, err, sizeof(err)) < 0 ||
	    reset_count(t, &rst, err, sizeof(err)) < 0) {
		log_warnx("pending update: %s: decided on a later start", err);
		broker_set_blob(u->b, &p);
		goto out;
	}
	if (update_state_load(u->b->statepath, &st, err, sizeof(err)) < 0) {
		log_warnx("pending update: %s: counting from this boot", err);
	}
	if (boots < 1) {
		boots = UPDATE_DEFAULT_BOOTS;
	}
	match = p.nbranches == 2 ? update_match(&p, (const uint8_t(*)[32]) now)
	                         : -1;
	act = update_decide(true, match, &st, rst, boots);
	switch (act) {
	case UPD_COMMIT:
		if (commit(u, t, &p) < 0) {
			/* both branches still work: commit on a later start */
			broker_set_blob(u->b, &p);
		}
		break;
	case UPD_KEEP:
		if (update_state_store(u->b->statepath, &st) < 0) {
			log_warn("cannot write %s", u->b->statepath);
		}
		log_info("pending update: the PCRs hold the old values (boot "
		         "%lld of %d on the old image); keeping both branches",
		         (long long) st.boots_seen, boots);
		broker_set_blob(u->b, &p);
		break;
	case UPD_DROP:
		log_info("pending update dropped: %lld boots on the old values "
		         "(--pending-boots %d): update rolled back, the old "
		         "branch alone stays",
		         (long long) st.boots_seen, boots);
		update_crash_point("rollback-drop");
		broker_drop_pending(u->b);
		broker_set_blob(u->b, NULL);
		break;
	default:
		log_warnx("pending update: the PCRs match neither the current "
		          "nor the predicted values; keys are refused, nothing "
		          "is dropped");
		broker_set_blob(u->b, &p);
		break;
	}
out:
	broker_tpm_unlock(u->b);
}

static void
fill_policy(struct key_admin_rep *rep, const struct seal_blob *b,
            const uint8_t (*now)[32], bool                     have_now)
{
	uint32_t changed = 0;

	pcrset_format(b->mask, rep->pcrs, sizeof(rep->pcrs));
	rep->branches = b->nbranches;
	memcpy(rep->digest0, b->branch[0].digest.buffer, 32);
	if (b->nbranches > 1) {
		memcpy(rep->digest1, b->branch[1].digest.buffer, 32);
	}
	rep->matches = -1;
	if (!have_now) {
		return;
	}
	rep->matches = update_match(b, now);
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		bool same = false;
		if (!(b->mask & (1u << i))) {
			continue;
		}
		for (int k = 0; k < b->nbranches; k++) {
			same |= memcmp(b->branch[k].values[i], now[i], 32) == 0;
		}
		if (!same) {
			changed |= 1u << i;
		}
	}
	pcrset_format(changed, rep->changed_pcrs, sizeof(rep->changed_pcrs));
}

static void
fill_pending(struct update *u, struct key_admin_rep *rep)
{
	struct update_state st;
	char                err[REASON_LEN];

	rep->pending_boots = u->b->cfg.pending_boots;
	rep->pending = access(u->b->pendpath, F_OK) == 0;
	if (rep->pending &&
	    update_state_load(u->b->statepath, &st, err, sizeof(err)) == 0) {
		rep->boots_seen = st.boots_seen;
	}
}

int
update_status(struct update *u, struct key_admin_rep *rep)
{
	struct broker          *b = u->b;
	uint8_t                 now[SEAL_PCR_MAX][32];
	const struct seal_blob *bl;
	struct seal_blob        fb;
	struct tpm             *t;
	TSS2_RC                 rc;
	char                    err[REASON_LEN] = "";
	bool                    have_now = false;

	memset(rep, 0, sizeof(*rep));
	t = broker_tpm_lock(b);
	if (t != NULL && broker_ensure_blob(b, &rc, err, sizeof(err)) < 0) {
		rep->status = KEY_ERROR;
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		goto out;
	}
	bl = broker_blob(b);
	if (bl == NULL) {
		/* no TPM: show what the files say */
		if (seal_blob_load(b->sealpath, &fb, err, sizeof(err)) < 0) {
			rep->status = t == NULL ? KEY_NO_HW_TPM : KEY_ERROR;
			strfmt(rep->reason, sizeof(rep->reason), "%s", err);
			goto out;
		}
		bl = &fb;
	}
	if (t != NULL &&
	    seal_pcr_read(t, bl->mask, now, &rc, err, sizeof(err)) == 0) {
		have_now = true;
	}
	fill_policy(rep, bl, (const uint8_t(*)[32]) now, have_now);
	rep->status = t == NULL ? KEY_NO_HW_TPM : KEY_OK;
	if (t == NULL) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "no hardware TPM (tcti %s)", b->cfg.tcti);
	} else if (rep->matches < 0) {
		rep->status = KEY_POLICY_MISMATCH;
		strfmt(rep->reason, sizeof(rep->reason),
		       "the PCRs match no branch (changed: %s)",
		       rep->changed_pcrs);
	}
out:
	broker_tpm_unlock(b);
	fill_pending(u, rep);
	escrow_fill(u->esc, rep);
	return 0;
}

/* Unseal cur (the policy must hold now) and seal its master twice: to
 * the current values alone (act) and to current OR pred (pend), each
 * proven by an unseal. master: 2 * SEAL_MASTER_LEN of secmem. */
static int
announce_reseal(struct tpm *t, const struct seal_blob *cur,
                const uint8_t (*pred)[32], uint8_t    *master,
                struct seal_blob *act, struct seal_blob *pend,
                struct key_admin_rep *rep)
{
	char    err[REASON_LEN] = "";
	TSS2_RC rc;
	int     ret;

	ret = seal_unseal(t, cur, master, &rc, err, sizeof(err));
	if (ret < 0) {
		rep->status = ret == -2 ? KEY_POLICY_MISMATCH : KEY_ERROR;
		strfmt(rep->reason, sizeof(rep->reason),
		       "the current policy does not hold, refusing to "
		       "reseal: %s",
		       err);
		return -1;
	}
	/* the active blob: current values alone (the committed image) */
	if (seal_proven(t, cur->mask, master, NULL, act,
	                master + SEAL_MASTER_LEN, err, sizeof(err)) < 0 ||
	    seal_proven(t, cur->mask, master, pred, pend,
	                master + SEAL_MASTER_LEN, err, sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "reseal: %s", err);
		return -1;
	}
	update_crash_point("announce-sealed");
	return 0;
}

/* Write update.json, the pending blob, then the new active blob: a crash
 * between any two leaves a set the next start understands. */
static int
announce_write(struct update *u, struct tpm *t, const struct seal_blob *act,
               const struct seal_blob *pend, struct key_admin_rep *rep)
{
	struct broker      *b = u->b;
	struct update_state st;
	char                err[REASON_LEN] = "";

	memset(&st, 0, sizeof(st));
	st.announced = (int64_t) time(NULL);
	if (reset_count(t, &st.last_reset, err, sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		return -1;
	}
	if (update_state_store(b->statepath, &st) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "cannot write %s: %s",
		       b->statepath, strerror(errno));
		return -1;
	}
	update_crash_point("announce-state-written");
	if (seal_blob_store(b->pendpath, pend) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "cannot write %s: %s",
		       b->pendpath, strerror(errno));
		return -1;
	}
	update_crash_point("announce-pending-written");
	if (seal_blob_store(b->sealpath, act) < 0) {
		/* the old active blob stays; the pending one covers now */
		log_warn("cannot rewrite %s (the old one stays)", b->sealpath);
	}
	update_crash_point("announce-active-written");
	return 0;
}

int
update_announce(struct update *u, const struct key_admin_req *rq,
                struct key_admin_rep *rep)
{
	struct broker          *b = u->b;
	struct seal_blob        cur, act, pend;
	uint8_t                 now[SEAL_PCR_MAX][32], pred[SEAL_PCR_MAX][32];
	uint8_t                *master = NULL;
	uint32_t                named;
	const struct seal_blob *bl;
	struct tpm             *t;
	TSS2_RC                 rc;
	char                    err[REASON_LEN] = "", pcrs[PCRS_LEN];

	memset(rep, 0, sizeof(*rep));
	rep->status = KEY_ERROR;
	if (pcrset_list_parse(rq->pcrs, &named) < 0) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "pcrs \"%.64s\": expected a list of 0-15", rq->pcrs);
		return 0;
	}
	if ((t = broker_tpm_lock(b)) == NULL) {
		rep->status = KEY_NO_HW_TPM;
		strfmt(rep->reason, sizeof(rep->reason),
		       "no hardware TPM (tcti %s): cannot reseal", b->cfg.tcti);
		goto out;
	}
	if (broker_ensure_blob(b, &rc, err, sizeof(err)) < 0 ||
	    (bl = broker_blob(b)) == NULL) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		goto out;
	}
	cur = *bl;
	if (seal_pcr_read(t, cur.mask, now, &rc, err, sizeof(err)) < 0 ||
	    update_predicted(cur.mask, named, &rq->values,
	                     (const uint8_t(*)[32]) now, pred, err,
	                     sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		goto out;
	}
	if ((master = secmem_alloc(2 * SEAL_MASTER_LEN)) == NULL) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "cannot lock memory for the key");
		goto out;
	}
	if (announce_reseal(t, &cur, (const uint8_t(*)[32]) pred, master, &act,
	                    &pend, rep) < 0 ||
	    announce_write(u, t, &act, &pend, rep) < 0) {
		goto out;
	}
	broker_set_blob(b, &pend);
	pcrset_format(named, pcrs, sizeof(pcrs));
	log_info("update announced: master resealed to the current values OR "
	         "the predicted ones (PCRs %s predicted to change), pending "
	         "in %s",
	         pcrs, b->pendpath);
	rep->status = KEY_OK;
	fill_policy(rep, &pend, (const uint8_t(*)[32]) now, true);
out:
	if (master != NULL) {
		secmem_free(master, 2 * SEAL_MASTER_LEN);
	}
	broker_tpm_unlock(b);
	fill_pending(u, rep);
	escrow_fill(u->esc, rep);
	return 0;
}

/* ---- the keybroker-admin socket ---- */

static int
admin_handle(void *arg, enum msg_type type, const void *req, uid_t peer,
             enum msg_type *rep_type, void *rep, char *err, size_t errlen)
{
	struct update              *u = arg;
	const struct key_admin_req *rq = req;
	struct key_admin_rep       *rp = rep;

	if (type != MSG_KEY_ADMIN_REQ) {
		snprintf(err, errlen, "keybroker-admin serves KeyAdmin only");
		return -1;
	}
	*rep_type = MSG_KEY_ADMIN_REP;
	if (peer != 0 && peer != geteuid()) {
		memset(rp, 0, sizeof(*rp));
		rp->status = KEY_DENIED;
		strfmt(rp->reason, sizeof(rp->reason),
		       "uid %d: keybroker-admin is root's", (int) peer);
		log_warnx("keybroker-admin: %s %s refused: %s",
		          key_admin_op_name(rq->op), "request", rp->reason);
		return 0;
	}
	log_info("keybroker-admin: %s from uid %d", key_admin_op_name(rq->op),
	         (int) peer);
	switch (rq->op) {
	case KOP_STATUS:
		return update_status(u, rp);
	case KOP_ANNOUNCE:
		update_announce(u, rq, rp);
		(void) broker_recheck(
		    u->b); /* KeyBrokerStatus: the blob changed */
		return 0;
	case KOP_RECOVER_BEGIN:
		return escrow_recover_begin(u->esc, rp);
	case KOP_RECOVER:
		escrow_recover(u->esc, rq, rp);
		fill_pending(u, rp);
		if (rp->status == KEY_OK) {
			(void) broker_recheck(u->b); /* READY again */
		}
		return 0;
	default:
		memset(rp, 0, sizeof(*rp));
		rp->status = KEY_ERROR;
		strfmt(rp->reason, sizeof(rp->reason), "unknown op %d", rq->op);
		return 0;
	}
}

int
update_open(struct update **up, struct broker *b, char *err, size_t errlen)
{
	static const enum msg_type accept[] = {MSG_KEY_ADMIN_REQ, MSG_NONE};
	const struct broker_cfg   *cfg = &b->cfg;
	struct peer_policy         pol;
	struct update             *u;

	*up = NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	u->b = b;
	if (strcmp(cfg->tcti, "none") != 0) {
		update_boot(u);
	}
	if (escrow_open(&u->esc, b, err, errlen) < 0) {
		free(u);
		return -1;
	}
	peer_policy_init(&pol);
	pol.only_listed = true; /* root (and our own uid) only */
	(void) peer_policy_add(&pol, 0);
	(void) peer_policy_add(&pol, geteuid());
	if (req_server_open(&u->srv, cfg->rundir, "keybroker-admin", accept, 2,
	                    &pol, admin_handle, u) < 0) {
		snprintf(err, errlen, "cannot serve keybroker-admin in %s",
		         cfg->rundir);
		escrow_close(u->esc);
		free(u);
		return -1;
	}
	*up = u;
	return 0;
}

void
update_close(struct update *u)
{
	if (u == NULL) {
		return;
	}
	req_server_close(u->srv);
	escrow_close(u->esc);
	free(u);
}
