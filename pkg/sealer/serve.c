/*
 * serve.c: the keybroker service: KeyRelease and AttestRequest, and the
 * broker's open and close. The unseal itself, the TPM, the blob and the
 * status live in core.c.
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

int
broker_release(struct broker *b, const char *uuid, uid_t peer,
               struct key_release_rep *rep)
{
	struct broker_round *r;
	bool                 leader = false;
	int                  shared;

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
		broker_unseal(b, r);
		pthread_mutex_lock(&b->mu);
		r->done = true;
		if (b->cur == r) {
			b->cur = NULL;
		}
		broker_round_status(b, r);
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

/* The AK once at start, so no VM's first launch pays for it. */
static void
attest_start(struct broker *b)
{
	char err[REASON_LEN];

	strfmt(b->att.vault, sizeof(b->att.vault), "%s", b->cfg.vault);
	b->att.pcrs = b->cfg.pcrs; /* quotes cover the vault PCR set */
	pthread_mutex_lock(&b->tpm_mu);
	if (!b->no_tpm && tpm_is_open(&b->tpm) &&
	    attest_setup(&b->att, &b->tpm, err, sizeof(err)) < 0) {
		log_warnx("attestation not ready (retried on request): %s",
		          err);
	}
	pthread_mutex_unlock(&b->tpm_mu);
}

/* Serve keybroker (KeyRelease, AttestRequest) to the launcher's uid. */
static int
serve_open(struct broker *b, char *err, size_t errlen)
{
	static const enum msg_type accept[] = {MSG_KEY_RELEASE_REQ,
	                                       MSG_ATTEST_REQ, MSG_NONE};
	const struct broker_cfg   *cfg = &b->cfg;
	struct peer_policy         rpol;
	char                       sock[PATH_LEN];

	peer_policy_init(&rpol);
	rpol.only_listed = true; /* the launcher's uid and nobody else */
	(void) peer_policy_add(&rpol, cfg->launcher_uid);
	if (req_server_open(&b->srv, cfg->rundir, "keybroker", accept,
	                    cfg->nworkers, &rpol, handle, b) < 0) {
		strfmt(err, errlen, "cannot serve keybroker in %s",
		       cfg->rundir);
		return -1;
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
	return 0;
}

int
broker_open(struct broker **bp, const struct broker_cfg *cfg, char *err,
            size_t errlen)
{
	struct broker *b;

	*bp = NULL;
	/* The reply that carries a key is sent from a buffer NNG frees
	 * without wiping: pubsub (endpoint_msg_from_string, secret) fixes
	 * glibc's mmap threshold so that buffer goes back to the kernel. */

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	if (broker_core_init(b, cfg, err, errlen) < 0) {
		goto fail;
	}
	/* a pending planned update: commit, keep or drop it (update.c) */
	if (update_open(&b->upd, b, err, errlen) < 0) {
		goto fail;
	}
	/* provision or load, then one check so the status tells the truth
	 * from the start (releases still unseal on their own) */
	if (broker_recheck(b) < 0) {
		strfmt(err, errlen, "cannot lock memory for the key");
		goto fail;
	}
	attest_start(b);
	if (b->cfg.pcr_file[0] != '\0' && !b->no_tpm &&
	    pcrwatch_start(&b->pw, b, b->cfg.pcr_file, b->cfg.pcrs,
	                   b->pcrs_from_file, b->cfg.pcr_poll_ms) < 0) {
		strfmt(err, errlen, "cannot watch %s", b->cfg.pcr_file);
		goto fail;
	}
	if (serve_open(b, err, errlen) < 0) {
		goto fail;
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
	pcrwatch_stop(b->pw); /* before the TPM and the status go */
	b->pw = NULL;
	update_close(b->upd);
	req_server_close(b->srv);
	broker_core_fini(b);
	explicit_bzero(b, sizeof(*b));
	free(b);
}
