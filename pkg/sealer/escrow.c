/*
 * escrow.c: recovery escrow of the master key, off by default.
 *
 * With --escrow-pubkey FILE (a controller's RSA public key, PEM) the broker
 * writes master.escrow.json: the master wrapped with RSA-OAEP-SHA256 to
 * that key (no secret in the file: only the controller's private key opens
 * it). After an unplanned change (a wrong prediction, a tampered boot that
 * the operator has since repaired and the controller has verified):
 *   1. recover-begin: the broker makes a fresh RSA transport key pair in
 *      memory and returns its public half;
 *   2. the controller (vtpm-verify escrow recover) unwraps the escrow blob
 *      with its private key and re-wraps the master to the transport key;
 *   3. recover: the broker unwraps it with the transport key (then drops
 *      that key), checks it against the escrow record's master id, and
 *      reseals it under the PCR values now. The master never touches a
 *      file on the device.
 * The wrap/unwrap helpers are shared with the controller side.
 */
#include "sealer.h"
#include "tpm_ek.h"
#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define TRANSPORT_TTL 900 /* s a transport key waits for its import */

struct escrow {
	struct broker *b;
	char           path[PATH_LEN];
	EVP_PKEY      *pub; /* the controller's key */
	char           fp[65];
	EVP_PKEY      *transport; /* recover-begin's key pair, or NULL */
	time_t         transport_at;
};

/* ---- the broker side ---- */

/* Write the escrow record unless one for this controller key exists.
 * Needs the master: one unseal now (provisions on a first start). */
static void
ensure_record(struct escrow *e)
{
	struct escrow_file      f;
	const struct seal_blob *bl;
	struct tpm             *t;
	uint8_t                *master;
	char                    err[REASON_LEN] = "";
	TSS2_RC                 rc;

	if (escrow_file_load(e->path, &f, err, sizeof(err)) == 0 &&
	    strcmp(f.key_fp, e->fp) == 0) {
		return;
	}
	if ((master = secmem_alloc(SEAL_MASTER_LEN)) == NULL) {
		return;
	}
	t = broker_tpm_lock(e->b); /* locked even when NULL */
	if (t == NULL) {
		log_warnx("escrow: no hardware TPM now: record not written");
		goto out;
	}
	if (broker_ensure_blob(e->b, &rc, err, sizeof(err)) < 0 ||
	    (bl = broker_blob(e->b)) == NULL ||
	    seal_unseal(t, bl, master, &rc, err, sizeof(err)) < 0) {
		log_warnx("escrow: cannot unseal the master now (%s): record "
		          "not written",
		          err);
		goto out;
	}
	memset(&f, 0, sizeof(f));
	memcpy(f.key_fp, e->fp, sizeof(f.key_fp));
	if (escrow_master_id(master, f.master_id) < 0 ||
	    escrow_wrap(e->pub, master, SEAL_MASTER_LEN, f.wrapped,
	                sizeof(f.wrapped), &f.wlen) < 0 ||
	    escrow_file_store(e->path, &f) < 0) {
		log_warnx("escrow: cannot wrap or write %s", e->path);
		goto out;
	}
	log_info("escrow: master wrapped (RSA-OAEP-SHA256) to controller key "
	         "sha256 %s in %s",
	         e->fp, e->path);
out:
	broker_tpm_unlock(e->b);
	secmem_free(master, SEAL_MASTER_LEN);
}

int
escrow_open(struct escrow **ep, struct broker *b, char *err, size_t errlen)
{
	const struct broker_cfg *cfg = &b->cfg;
	struct escrow           *e;

	*ep = NULL;
	if (cfg->escrow_pubkey[0] == '\0') {
		return 0; /* off */
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	e->b = b;
	if (path_join(e->path, sizeof(e->path), "%s/%s", cfg->vault,
	              ESCROW_FILE) < 0 ||
	    escrow_load_pubkey(cfg->escrow_pubkey, &e->pub, e->fp, err,
	                       errlen) < 0) {
		free(e);
		return -1;
	}
	if (strcmp(cfg->tcti, "none") != 0) {
		ensure_record(e);
	}
	*ep = e;
	return 0;
}

void
escrow_close(struct escrow *e)
{
	if (e == NULL) {
		return;
	}
	EVP_PKEY_free(e->pub);
	EVP_PKEY_free(e->transport);
	free(e);
}

void
escrow_fill(struct escrow *e, struct key_admin_rep *rep)
{
	struct escrow_file f;
	char               err[REASON_LEN];

	if (e == NULL) {
		rep->escrow = ESCROW_OFF;
		return;
	}
	snprintf(rep->escrow_key, sizeof(rep->escrow_key), "%s", e->fp);
	rep->escrow = escrow_file_load(e->path, &f, err, sizeof(err)) == 0 &&
	                      strcmp(f.key_fp, e->fp) == 0
	                  ? ESCROW_STORED
	                  : ESCROW_MISSING;
}

int
escrow_recover_begin(struct escrow *e, struct key_admin_rep *rep)
{
	BIO  *bio;
	char *pem = NULL;
	long  n;

	memset(rep, 0, sizeof(*rep));
	rep->status = KEY_ERROR;
	if (e == NULL) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "recovery escrow is off (no --escrow-pubkey)");
		return 0;
	}
	EVP_PKEY_free(e->transport);
	e->transport = EVP_RSA_gen(2048);
	if (e->transport == NULL || (bio = BIO_new(BIO_s_mem())) == NULL) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "cannot make a transport key");
		return 0;
	}
	if (PEM_write_bio_PUBKEY(bio, e->transport) == 1 &&
	    (n = BIO_get_mem_data(bio, &pem)) > 0 &&
	    (size_t) n < sizeof(rep->data)) {
		memcpy(rep->data, pem, (size_t) n);
		rep->status = KEY_OK;
		e->transport_at = time(NULL);
		log_info("escrow: recovery begun: transport key made (valid "
		         "%d s)",
		         TRANSPORT_TTL);
	} else {
		strfmt(rep->reason, sizeof(rep->reason),
		       "cannot encode the transport key");
	}
	BIO_free(bio);
	escrow_fill(e, rep);
	return 0;
}

/* The master from the controller's re-wrap (to our transport key); it
 * must be this device's (the master id of the escrow record f). 0, or -1
 * with rep's reason. */
static int
unwrap_master(struct escrow *e, const uint8_t *wrapped, size_t wlen,
              const struct escrow_file *f, uint8_t *master,
              struct key_admin_rep *rep)
{
	char id[65];

	if (escrow_unwrap(e->transport, wrapped, wlen, master) < 0) {
		strfmt(
		    rep->reason, sizeof(rep->reason),
		    "cannot unwrap the master with the transport key (made for "
		    "another recovery?)");
		return -1;
	}
	if (escrow_master_id(master, id) < 0 || strcmp(id, f->master_id) != 0) {
		strfmt(
		    rep->reason, sizeof(rep->reason),
		    "the recovered key is not this device's master (master id "
		    "differs from %s)",
		    e->path);
		return -1;
	}
	return 0;
}

/* Seal master (2 * SEAL_MASTER_LEN of secmem, the second half scratch)
 * again to the current values of the sealed PCR set (TPM lock held),
 * prove it, write the blob. 0, or -1 with rep's reason. */
static int
recover_reseal(struct escrow *e, struct tpm *t, uint8_t *master,
               struct seal_blob *nb, struct key_admin_rep *rep)
{
	const struct seal_blob *bl;
	uint32_t                mask = e->b->cfg.pcrs;
	uint8_t                *check = master + SEAL_MASTER_LEN;
	char                    err[REASON_LEN];
	TSS2_RC                 rc;

	if (broker_ensure_blob(e->b, &rc, err, sizeof(err)) == 0 &&
	    (bl = broker_blob(e->b)) != NULL) {
		mask = bl->mask; /* keep the sealed set */
	}
	if (seal_create(t, mask, master, nb, &rc, err, sizeof(err)) < 0 ||
	    seal_unseal(t, nb, check, &rc, err, sizeof(err)) < 0 ||
	    memcmp(master, check, SEAL_MASTER_LEN) != 0) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "reseal under the current values: %s", err);
		return -1;
	}
	update_crash_point("recover-sealed");
	if (seal_blob_store(e->b->sealpath, nb) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "cannot write %s: %s",
		       e->b->sealpath, strerror(errno));
		return -1;
	}
	return 0;
}

int
escrow_recover(struct escrow *e, const struct key_admin_req *rq,
               struct key_admin_rep *rep)
{
	struct escrow_file f;
	struct seal_blob   nb;
	struct tpm        *t;
	bool               locked = false;
	uint8_t           *master, wrapped[ESCROW_WRAP_MAX];
	size_t             wlen;
	char               err[REASON_LEN], pcrs[PCRS_LEN];

	memset(rep, 0, sizeof(*rep));
	rep->status = KEY_ERROR;
	if (e == NULL) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "recovery escrow is off (no --escrow-pubkey)");
		return 0;
	}
	if (e->transport == NULL ||
	    time(NULL) - e->transport_at > TRANSPORT_TTL) {
		strfmt(
		    rep->reason, sizeof(rep->reason),
		    "no recovery begun in the last %d s (recover-begin first)",
		    TRANSPORT_TTL);
		return 0;
	}
	if (escrow_unhex(rq->data, wrapped, sizeof(wrapped), &wlen) < 0) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "data: expected the re-wrapped master in hex");
		return 0;
	}
	if (escrow_file_load(e->path, &f, err, sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		return 0;
	}
	if ((master = secmem_alloc(2 * SEAL_MASTER_LEN)) == NULL) {
		strfmt(rep->reason, sizeof(rep->reason), "cannot lock memory");
		return 0;
	}
	if (unwrap_master(e, wrapped, wlen, &f, master, rep) < 0) {
		goto out;
	}
	t = broker_tpm_lock(e->b); /* locked even when NULL */
	locked = true;
	if (t == NULL) {
		rep->status = KEY_NO_HW_TPM;
		strfmt(rep->reason, sizeof(rep->reason), "no hardware TPM");
		goto out;
	}
	if (recover_reseal(e, t, master, &nb, rep) < 0) {
		goto out;
	}
	broker_drop_pending(e->b);
	broker_set_blob(e->b, &nb);
	EVP_PKEY_free(e->transport); /* one recovery per transport key */
	e->transport = NULL;
	pcrset_format(nb.mask, pcrs, sizeof(pcrs));
	log_info("escrow: master recovered through the controller and "
	         "resealed to the current values of PCRs %s",
	         pcrs);
	rep->status = KEY_OK;
out:
	if (locked) {
		broker_tpm_unlock(e->b);
	}
	secmem_free(master, 2 * SEAL_MASTER_LEN);
	escrow_fill(e, rep);
	return 0;
}
