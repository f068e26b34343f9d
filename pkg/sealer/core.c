/*
 * core.c: the broker's state below its request handlers (serve.c,
 * update.c, escrow.c): configuration and vault paths, the TPM connection
 * and the sealed blob in use (under tpm_mu), the unseal on the TPM now and
 * the KeyBrokerStatus it leads to (under mu). Calls nothing above it.
 */
#include "sealer.h"
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

/* Publish a new status when it changed (call with mu held). */
static void
set_status(struct broker *b, int state, TSS2_RC rc, uint32_t changed,
           const char *reason)
{
	struct keybroker_status *s = &b->st;
	int                      old = s->state;

	s->state = state;
	s->rc = rc;
	pcrset_format(b->have_blob ? b->blob.mask : b->cfg.pcrs, s->pcrs,
	              sizeof(s->pcrs));
	pcrset_format(changed, s->changed_pcrs, sizeof(s->changed_pcrs));
	strfmt(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	if (old != state) {
		log_info("status %s -> %s%s%s", kb_state_name(old),
		         kb_state_name(state), s->reason[0] ? ": " : "",
		         s->reason);
	}
	if (b->pub != NULL &&
	    topic_pub_set(b->pub, KEYBROKER_STATUS_KEY, s) < 0) {
		log_warnx("cannot publish KeyBrokerStatus");
	}
}

/* Load the sealed blob, or provision a new master key when there is none.
 * Called with tpm_mu held and the TPM open. Never re-provisions over a
 * blob that exists. */
int
broker_ensure_blob(struct broker *b, TSS2_RC *rc, char *err, size_t errlen)
{
	uint8_t *master, *check;
	char     pcrs[PCRS_LEN], want[PCRS_LEN];

	*rc = TSS2_RC_SUCCESS;
	if (b->have_blob) {
		return 0;
	}
	if (access(b->sealpath, F_OK) == 0) {
		if (seal_blob_load(b->sealpath, &b->blob, err, errlen) < 0) {
			return -1; /* never re-provision over a blob */
		}
		b->have_blob = true;
		if (b->blob.srk != b->tpm.h.srk && !b->srk_explicit) {
			/* a blob sealed before the default moved (or under
			 * another handle): its parent is where it says, so
			 * an update never locks a device out of its key */
			log_info("%s is sealed under the SRK at 0x%x: using "
			         "that handle (--srk-handle sets another)",
			         b->sealpath, b->blob.srk);
			b->tpm.h.srk = b->blob.srk;
			b->cfg.handles.srk = b->blob.srk;
			if (b->tpm.srk != ESYS_TR_NONE) {
				(void) Esys_TR_Close(b->tpm.ectx, &b->tpm.srk);
				b->tpm.srk = ESYS_TR_NONE;
			}
		}
		pcrset_format(b->blob.mask, pcrs, sizeof(pcrs));
		pcrset_format(b->cfg.pcrs, want, sizeof(want));
		if (b->blob.mask != b->cfg.pcrs) {
			log_warnx(
			    "%s is sealed to PCRs %s, --pcrs asks for %s: "
			    "keeping the sealed set (changing it needs a "
			    "reseal)",
			    b->sealpath, pcrs, want);
		}
		log_info("sealed master key found in %s (PCRs %s)", b->sealpath,
		         pcrs);
		return 0;
	}
	if (errno != ENOENT) {
		strfmt(err, errlen, "%s: %s", b->sealpath, strerror(errno));
		return -1;
	}
	master = secmem_alloc(2 * SEAL_MASTER_LEN);
	if (master == NULL) {
		strfmt(err, errlen, "cannot lock memory for the master key");
		return -1;
	}
	check = master + SEAL_MASTER_LEN;
	if (RAND_priv_bytes(master, SEAL_MASTER_LEN) != 1) {
		strfmt(err, errlen, "RAND_priv_bytes failed");
		goto fail;
	}
	if (seal_create(&b->tpm, b->cfg.pcrs, master, &b->blob, rc, err,
	                errlen) < 0) {
		goto fail;
	}
	/* prove the new blob before writing it */
	if (seal_unseal(&b->tpm, &b->blob, check, rc, err, errlen) < 0) {
		goto fail;
	}
	if (memcmp(master, check, SEAL_MASTER_LEN) != 0) {
		strfmt(err, errlen, "new sealed blob unseals to another key");
		goto fail;
	}
	if (seal_blob_store(b->sealpath, &b->blob) < 0) {
		strfmt(err, errlen, "cannot write %s: %s", b->sealpath,
		       strerror(errno));
		goto fail;
	}
	secmem_free(master, 2 * SEAL_MASTER_LEN);
	b->have_blob = true;
	pcrset_format(b->blob.mask, pcrs, sizeof(pcrs));
	log_info("provisioned: new master key sealed under SRK 0x%x to sha256 "
	         "PCRs %s, blob in %s",
	         b->tpm.h.srk, pcrs, b->sealpath);
	return 0;
fail:
	secmem_free(master, 2 * SEAL_MASTER_LEN);
	memset(&b->blob, 0, sizeof(b->blob));
	return -1;
}

static void
fill_no_tpm(struct broker *b, struct broker_round *r, const char *why)
{
	r->status = KEY_NO_HW_TPM;
	strfmt(r->reason, sizeof(r->reason), "no hardware TPM (tcti %s)%s%s",
	       b->cfg.tcti, why ? ": " : "", why ? why : "");
}

void
broker_unseal(struct broker *b, struct broker_round *r)
{
	char    err[REASON_LEN] = "", pcrs[PCRS_LEN], rcs[128];
	TSS2_RC rc = TSS2_RC_SUCCESS;
	int     attempt, ret;

	if (b->no_tpm) {
		fill_no_tpm(b, r, NULL);
		return;
	}
	pthread_mutex_lock(&b->tpm_mu);
	for (attempt = 0; attempt < 2; attempt++) {
		if (!tpm_is_open(&b->tpm) &&
		    tpm_reopen(&b->tpm, err, sizeof(err)) < 0) {
			fill_no_tpm(b, r, err);
			goto out;
		}
		ret = -1;
		if (broker_ensure_blob(b, &rc, err, sizeof(err)) == 0 &&
		    (ret = seal_unseal(&b->tpm, &b->blob, r->master, &rc, err,
		                       sizeof(err))) == 0) {
			b->unseals++;
			r->status = KEY_OK;
			r->rc = 0;
			goto out;
		}
		r->rc = rc;
		if (ret == -2) {
			char why[REASON_LEN];

			if (seal_changed_pcrs(&b->tpm, &b->blob, &r->changed,
			                      &rc, why, sizeof(why)) < 0) {
				strfmt(
				    r->reason, sizeof(r->reason),
				    "vault PCR policy failed (%s); cannot tell "
				    "which PCRs changed: %s",
				    err, why);
			} else if (r->changed == 0) {
				strfmt(
				    r->reason, sizeof(r->reason),
				    "vault PCR policy failed (%s) although the "
				    "PCRs hold their seal-time values",
				    err);
			} else {
				pcrset_format(r->changed, pcrs, sizeof(pcrs));
				strfmt(r->reason, sizeof(r->reason),
				       "PCRs changed since sealing: %s (%s)",
				       pcrs, err);
			}
			r->status = KEY_POLICY_MISMATCH;
			goto out;
		}
		if (tpm_rc_is_io(rc)) {
			/* the connection dropped (TPM restarted?): re-open */
			log_warnx("tpm %s: %s: re-opening the connection",
			          b->cfg.tcti, err);
			if (tpm_reopen(&b->tpm, err, sizeof(err)) < 0) {
				fill_no_tpm(b, r, err);
				goto out;
			}
			continue;
		}
		if (!b->have_blob) {
			break;
		}
		/* a stale SRK handle after the TPM changed: look it up again */
		if (b->tpm.srk != ESYS_TR_NONE) {
			(void) Esys_TR_Close(b->tpm.ectx, &b->tpm.srk);
			b->tpm.srk = ESYS_TR_NONE;
		}
	}
	r->status = KEY_ERROR;
	strfmt(r->reason, sizeof(r->reason), "%s",
	       err[0] ? err : tek_rc_str(rc, rcs, sizeof(rcs)));
out:
	pthread_mutex_unlock(&b->tpm_mu);
}

void
broker_round_status(struct broker *b, const struct broker_round *r)
{
	switch (r->status) {
	case KEY_OK:
		set_status(b, KB_READY, 0, 0, NULL);
		break;
	case KEY_NO_HW_TPM:
		set_status(b, KB_NO_HW_TPM, r->rc, 0, r->reason);
		break;
	case KEY_POLICY_MISMATCH:
		set_status(b, KB_POLICY_MISMATCH, r->rc, r->changed, r->reason);
		break;
	default:
		set_status(b, KB_ERROR, r->rc, 0, r->reason);
		break;
	}
}

uint64_t
broker_unseals(struct broker *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->mu);
	n = b->unseals;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void
broker_status(struct broker *b, struct keybroker_status *out)
{
	pthread_mutex_lock(&b->mu);
	*out = b->st;
	pthread_mutex_unlock(&b->mu);
}

struct tpm *
broker_tpm_lock(struct broker *b)
{
	char err[REASON_LEN];

	pthread_mutex_lock(&b->tpm_mu);
	if (b->no_tpm) {
		return NULL;
	}
	if (!tpm_is_open(&b->tpm) &&
	    tpm_reopen(&b->tpm, err, sizeof(err)) < 0) {
		log_warnx("tpm %s: %s", b->cfg.tcti, err);
		return NULL;
	}
	return &b->tpm;
}

void
broker_tpm_unlock(struct broker *b)
{
	pthread_mutex_unlock(&b->tpm_mu);
}

const struct seal_blob *
broker_blob(struct broker *b)
{
	return b->have_blob ? &b->blob : NULL;
}

void
broker_set_blob(struct broker *b, const struct seal_blob *blob)
{
	if (blob == NULL) {
		memset(&b->blob, 0, sizeof(b->blob));
		b->have_blob = false; /* next use loads the active file */
		return;
	}
	b->blob = *blob;
	b->have_blob = true;
}

int
broker_recheck(struct broker *b)
{
	struct broker_round *r = secmem_alloc(sizeof(*r));

	if (r == NULL) {
		return -1;
	}
	memset(r, 0, sizeof(*r));
	broker_unseal(b, r);
	pthread_mutex_lock(&b->mu);
	broker_round_status(b, r);
	pthread_mutex_unlock(&b->mu);
	secmem_free(r, sizeof(*r));
	return 0;
}

static void
remove_file(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT) {
		log_warn("unlink %s", path);
	}
}

void
broker_drop_pending(struct broker *b)
{
	/* the pending blob first: without it update.json means nothing */
	remove_file(b->pendpath);
	update_crash_point("drop-pending-removed");
	remove_file(b->statepath);
	(void) fsync_dir(b->cfg.vault);
}

int
broker_core_init(struct broker *b, const struct broker_cfg *cfg, char *err,
                 size_t errlen)
{
	struct peer_policy tpol;
	char               terr[REASON_LEN];

	memset(b, 0, sizeof(*b));
	b->cfg = *cfg;
	b->no_tpm = strcmp(cfg->tcti, "none") == 0;
	if (b->cfg.nworkers < 1) {
		b->cfg.nworkers = 32;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->tpm_mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->tpm.srk = ESYS_TR_NONE;
	strfmt(b->st.uuid, sizeof(b->st.uuid), "%s", KEYBROKER_STATUS_KEY);
	if (path_join(b->sealpath, sizeof(b->sealpath), "%s/%s", cfg->vault,
	              SEAL_FILE) < 0 ||
	    path_join(b->pendpath, sizeof(b->pendpath), "%s/%s", cfg->vault,
	              UPDATE_PENDING_FILE) < 0 ||
	    path_join(b->statepath, sizeof(b->statepath), "%s/%s", cfg->vault,
	              UPDATE_STATE_FILE) < 0) {
		strfmt(err, errlen, "%s: path too long", cfg->vault);
		return -1;
	}

	peer_policy_init(&tpol);
	if (cfg->launcher_uid != 0 && cfg->launcher_uid != geteuid()) {
		(void) peer_policy_add(&tpol, cfg->launcher_uid);
	}
	if (topic_pub_open(&b->pub, cfg->rundir, MSG_KEYBROKER_STATUS, &tpol) <
	    0) {
		strfmt(err, errlen, "cannot publish KeyBrokerStatus in %s",
		       cfg->rundir);
		return -1;
	}
	pthread_mutex_lock(&b->mu);
	set_status(b, KB_STARTING, 0, 0, NULL);
	pthread_mutex_unlock(&b->mu);

	if (b->no_tpm) {
		log_info("--tcti none: no hardware TPM, every release answers "
		         "no-hw-tpm");
	} else if (tpm_open(&b->tpm, cfg->tcti, terr, sizeof(terr)) < 0) {
		log_warnx("%s: will answer no-hw-tpm until it can be opened",
		          terr);
	}
	{
		/* the configuration, for seal.c, srk.c and attest.c; 0 =
		 * default */
		static const struct tpm_handles def = TPM_HANDLES_DEFAULT;

		b->srk_explicit = cfg->srk_explicit;
		b->tpm.h.srk = cfg->handles.srk ? cfg->handles.srk : def.srk;
		b->tpm.h.ek = cfg->handles.ek ? cfg->handles.ek : def.ek;
		b->tpm.h.ak = cfg->handles.ak ? cfg->handles.ak : def.ak;
		b->cfg.handles = b->tpm.h;
	}
	if (cfg->pcr_file[0] != '\0') {
		uint32_t m;
		char     ps[PCRS_LEN];
		int r = pcrfile_read(cfg->pcr_file, &m, terr, sizeof(terr));

		pcrset_format(b->cfg.pcrs, ps, sizeof(ps));
		if (r == 0) {
			b->cfg.pcrs = m;
			b->pcrs_from_file = true;
			pcrset_format(m, ps, sizeof(ps));
			log_info("vault PCR set %s from %s", ps, cfg->pcr_file);
		} else if (r == 1) {
			log_info("no PCR policy file %s yet: PCRs %s (--pcrs) "
			         "until it appears",
			         cfg->pcr_file, ps);
		} else {
			log_error("PCR policy file: %s; PCRs %s (--pcrs) until "
			          "it is fixed",
			          terr, ps);
		}
	}
	return 0;
}

void
broker_core_fini(struct broker *b)
{
	topic_pub_close(b->pub);
	b->pub = NULL;
	tpm_close(&b->tpm);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->tpm_mu);
	pthread_cond_destroy(&b->cv);
}
