/*
 * serve.c: provisioning, KeyRelease requests and KeyBrokerStatus.
 *
 * Every release proves the policy on the TPM now: a request that finds no
 * unseal in flight starts one (the "leader"); requests that arrive while it
 * runs join it and share its result. Nothing is cached past the round: the
 * master key lives in the round's locked memory and is wiped when the last
 * request of the round has derived its VM key.
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
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

/* One unseal and the requests that share it; allocated in secmem. */
struct round {
	bool     done;
	int      users;  /* requests still to derive from master */
	int      shared; /* requests that used this round */
	int      status; /* enum key_status */
	TSS2_RC  rc;
	uint32_t changed; /* PCRs that differ from seal time */
	char     reason[REASON_LEN];
	uint8_t  master[SEAL_MASTER_LEN];
};

struct broker {
	struct broker_cfg cfg;
	char              sealpath[PATH_LEN];
	bool              no_tpm; /* --tcti none */

	pthread_mutex_t         mu; /* cur, st, counters */
	pthread_cond_t          cv;
	struct round           *cur; /* the unseal in flight, or NULL */
	struct keybroker_status st;
	uint64_t                unseals, releases;

	pthread_mutex_t  tpm_mu; /* the TPM: one command stream */
	struct tpm       tpm;
	bool             have_blob;
	struct seal_blob blob;

	struct topic_pub  *pub;
	struct req_server *srv;
	struct update     *upd; /* update.c: pending update, admin socket */
	struct attest      att; /* attest.c; TPM use under tpm_mu */
};

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
 * Called with tpm_mu held and the TPM open. */
static int
ensure_sealed(struct broker *b, TSS2_RC *rc, char *err, size_t errlen)
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
	         SEAL_SRK_HANDLE, pcrs, b->sealpath);
	return 0;
fail:
	secmem_free(master, 2 * SEAL_MASTER_LEN);
	memset(&b->blob, 0, sizeof(b->blob));
	return -1;
}

static void
fill_no_tpm(struct broker *b, struct round *r, const char *why)
{
	r->status = KEY_NO_HW_TPM;
	strfmt(r->reason, sizeof(r->reason), "no hardware TPM (tcti %s)%s%s",
	       b->cfg.tcti, why ? ": " : "", why ? why : "");
}

/* The unseal of one round, on the TPM now. */
static void
do_unseal(struct broker *b, struct round *r)
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
		if (ensure_sealed(b, &rc, err, sizeof(err)) == 0 &&
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
	       err[0] ? err : tpm_rc_str(rc, rcs, sizeof(rcs)));
out:
	pthread_mutex_unlock(&b->tpm_mu);
}

static void
round_status(struct broker *b, const struct round *r)
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

int
broker_release(struct broker *b, const char *uuid, uid_t peer,
               struct key_release_rep *rep)
{
	struct round *r;
	bool          leader = false;
	int           shared;

	memset(rep, 0, sizeof(*rep));
	strfmt(rep->uuid, sizeof(rep->uuid), "%s", uuid);
	if (peer != b->cfg.launcher_uid) {
		rep->status = KEY_DENIED;
		strfmt(rep->reason, sizeof(rep->reason),
		       "uid %d is not the launcher's (%d)", (int) peer,
		       (int) b->cfg.launcher_uid);
		log_warnx("vm %s: key refused: %s", uuid, rep->reason);
		return 0;
	}
	pthread_mutex_lock(&b->mu);
	if (b->cur != NULL && !b->cur->done) {
		r = b->cur; /* an unseal is in flight: share it */
		r->users++;
		r->shared++;
		while (!r->done) {
			pthread_cond_wait(&b->cv, &b->mu);
		}
	} else {
		r = secmem_alloc(sizeof(*r));
		if (r == NULL) {
			pthread_mutex_unlock(&b->mu);
			rep->status = KEY_ERROR;
			strfmt(rep->reason, sizeof(rep->reason),
			       "cannot lock memory for the key");
			return 0;
		}
		memset(r, 0, sizeof(*r));
		r->users = 1;
		r->shared = 1;
		b->cur = r;
		leader = true;
		pthread_mutex_unlock(&b->mu);
		do_unseal(b, r);
		pthread_mutex_lock(&b->mu);
		r->done = true;
		if (b->cur == r) {
			b->cur = NULL;
		}
		round_status(b, r);
		pthread_cond_broadcast(&b->cv);
	}
	b->releases++;
	pthread_mutex_unlock(&b->mu);

	/* master is read-only once done; users keeps the round alive */
	rep->status = r->status;
	strfmt(rep->reason, sizeof(rep->reason), "%s", r->reason);
	if (r->status == KEY_OK && kdf_vm_key(r->master, SEAL_MASTER_LEN, uuid,
	                                      rep->key, sizeof(rep->key)) < 0) {
		rep->status = KEY_ERROR;
		strfmt(rep->reason, sizeof(rep->reason), "HKDF failed");
	}

	pthread_mutex_lock(&b->mu);
	shared = r->shared;
	if (--r->users == 0) {
		secmem_free(r, sizeof(*r)); /* wipes the master key */
	}
	pthread_mutex_unlock(&b->mu);
	if (rep->status == KEY_OK) {
		log_info("vm %s: key released to uid %d (%s unseal)", uuid,
		         (int) peer, leader ? "own" : "shared");
	} else {
		log_warnx("vm %s: no key (%s): %s", uuid,
		          key_status_name(rep->status), rep->reason);
	}
	(void) shared;
	return 0;
}

static int
handle(void *arg, enum msg_type type, const void *req, uid_t peer,
       enum msg_type *rep_type, void *rep, char *err, size_t errlen)
{
	const struct key_release_req *kr = req;
	struct broker                *b = arg;

	if (type == MSG_ATTEST_REQ) {
		*rep_type = MSG_ATTEST_REP;
		return attest_handle(&b->att, &b->tpm, &b->tpm_mu, req, peer,
		                     b->cfg.launcher_uid, rep);
	}
	if (type != MSG_KEY_RELEASE_REQ) {
		strfmt(err, errlen, "keybroker serves KeyRelease only");
		return -1;
	}
	*rep_type = MSG_KEY_RELEASE_REP;
	return broker_release(arg, kr->uuid, peer, rep);
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

int
broker_open(struct broker **bp, const struct broker_cfg *cfg, char *err,
            size_t errlen)
{
	static const enum msg_type accept[] = {MSG_KEY_RELEASE_REQ,
	                                       MSG_ATTEST_REQ, MSG_NONE};
	struct peer_policy         tpol, rpol;
	struct broker             *b;
	struct round              *r;
	char                       terr[REASON_LEN], sock[PATH_LEN];

	*bp = NULL;
	/* The reply that carries a key is sent from a buffer NNG frees
	 * without wiping: pubsub (endpoint_msg_from_string, secret) fixes
	 * glibc's mmap threshold so that buffer goes back to the kernel. */

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
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
	              SEAL_FILE) < 0) {
		strfmt(err, errlen, "%s: path too long", cfg->vault);
		goto fail;
	}

	peer_policy_init(&tpol);
	if (cfg->launcher_uid != 0 && cfg->launcher_uid != geteuid()) {
		(void) peer_policy_add(&tpol, cfg->launcher_uid);
	}
	if (topic_pub_open(&b->pub, cfg->rundir, MSG_KEYBROKER_STATUS, &tpol) <
	    0) {
		strfmt(err, errlen, "cannot publish KeyBrokerStatus in %s",
		       cfg->rundir);
		goto fail;
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
	/* a pending planned update: commit, keep or drop it (update.c) */
	if (update_open(&b->upd, b, err, errlen) < 0) {
		goto fail;
	}
	/* provision or load, then one check so the status tells the truth
	 * from the start (releases still unseal on their own) */
	if ((r = secmem_alloc(sizeof(*r))) == NULL) {
		strfmt(err, errlen, "cannot lock memory for the key");
		goto fail;
	}
	memset(r, 0, sizeof(*r));
	do_unseal(b, r);
	pthread_mutex_lock(&b->mu);
	round_status(b, r);
	pthread_mutex_unlock(&b->mu);
	secmem_free(r, sizeof(*r));
	/* the AK once at start, so no VM's first launch pays for it */
	strfmt(b->att.vault, sizeof(b->att.vault), "%s", cfg->vault);
	pthread_mutex_lock(&b->tpm_mu);
	if (!b->no_tpm && tpm_is_open(&b->tpm) &&
	    attest_setup(&b->att, &b->tpm, terr, sizeof(terr)) < 0) {
		log_warnx("attestation not ready (retried on request): %s",
		          terr);
	}
	pthread_mutex_unlock(&b->tpm_mu);

	peer_policy_init(&rpol);
	rpol.only_listed = true; /* the launcher's uid and nobody else */
	(void) peer_policy_add(&rpol, cfg->launcher_uid);
	if (req_server_open(&b->srv, cfg->rundir, "keybroker", accept,
	                    b->cfg.nworkers, &rpol, handle, b) < 0) {
		strfmt(err, errlen, "cannot serve keybroker in %s",
		       cfg->rundir);
		goto fail;
	}
	if (cfg->launcher_uid != geteuid() && geteuid() == 0 &&
	    path_join(sock, sizeof(sock), "%s/keybroker.req", cfg->rundir) ==
	        0) {
		/* 0600 and owned by the launcher: only it can connect */
		if (chown(sock, cfg->launcher_uid, (gid_t) -1) < 0) {
			log_warn("chown %s to uid %d", sock,
			         (int) cfg->launcher_uid);
		}
	}
	log_info("serving keybroker for uid %d, %d workers, tcti %s",
	         (int) cfg->launcher_uid, b->cfg.nworkers, cfg->tcti);
	*bp = b;
	return 0;
fail:
	broker_close(b);
	return -1;
}

void
broker_close(struct broker *b)
{
	if (b == NULL) {
		return;
	}
	update_close(b->upd);
	req_server_close(b->srv);
	topic_pub_close(b->pub);
	tpm_close(&b->tpm);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->tpm_mu);
	pthread_cond_destroy(&b->cv);
	explicit_bzero(b, sizeof(*b));
	free(b);
}

/* ---- hooks for update.c and escrow.c ---- */

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

int
broker_ensure_blob(struct broker *b, TSS2_RC *rc, char *err, size_t errlen)
{
	return ensure_sealed(b, rc, err, errlen);
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

const struct broker_cfg *
broker_config(const struct broker *b)
{
	return &b->cfg;
}

const char *
broker_sealpath(const struct broker *b)
{
	return b->sealpath;
}

struct update *
broker_update(struct broker *b)
{
	return b->upd;
}

void
broker_recheck(struct broker *b)
{
	struct round *r = secmem_alloc(sizeof(*r));

	if (r == NULL) {
		return;
	}
	memset(r, 0, sizeof(*r));
	do_unseal(b, r);
	pthread_mutex_lock(&b->mu);
	round_status(b, r);
	pthread_mutex_unlock(&b->mu);
	secmem_free(r, sizeof(*r));
}
