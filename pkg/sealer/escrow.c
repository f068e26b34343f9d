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

int
escrow_unhex(const char *s, uint8_t *out, size_t max, size_t *n)
{
	char   hex[2 * ESCROW_WRAP_MAX + 1]; /* the largest thing we read */
	size_t len = strlen(s);
	int    got;

	/* a file or a paste may end in a newline */
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ')) {
		len--;
	}

	if (len > 2 * max || len >= sizeof(hex)) {
		return -1;
	}
	memcpy(hex, s, len);
	hex[len] = '\0';
	if ((got = tek_unhex(hex, out, max)) < 0) {
		return -1;
	}
	*n = (size_t) got;
	return 0;
}

int
escrow_fingerprint(EVP_PKEY *k, char fp[65])
{
	unsigned char *der = NULL, md[32];
	unsigned int   mdlen = 0;
	int            n = i2d_PUBKEY(k, &der);

	if (n <= 0 ||
	    EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return -1;
	}
	OPENSSL_free(der);
	tek_hex(md, 32, fp, 65);
	return 0;
}

int
escrow_load_pubkey(const char *path, EVP_PKEY **out, char fp[65], char *err,
                   size_t errlen)
{
	FILE     *f = fopen(path, "r");
	EVP_PKEY *k;

	*out = NULL;
	if (f == NULL) {
		strfmt(err, errlen, "escrow key %s: %s", path, strerror(errno));
		return -1;
	}
	k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(k) < 2048) {
		strfmt(err, errlen,
		       "escrow key %s: not an RSA public key of 2048 bits or "
		       "more (PEM)",
		       path);
		EVP_PKEY_free(k);
		return -1;
	}
	if (escrow_fingerprint(k, fp) < 0) {
		strfmt(err, errlen, "escrow key %s: cannot encode it", path);
		EVP_PKEY_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

static EVP_PKEY_CTX *
oaep_ctx(EVP_PKEY *k, bool enc)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);

	if (c == NULL ||
	    (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) != 1) {
		EVP_PKEY_CTX_free(c);
		return NULL;
	}
	return c;
}

int
escrow_wrap(EVP_PKEY *pub, const uint8_t *in, size_t inlen, uint8_t *out,
            size_t max, size_t *outlen)
{
	EVP_PKEY_CTX *c = oaep_ctx(pub, true);
	int           rc = -1;

	*outlen = max;
	if (c != NULL && EVP_PKEY_encrypt(c, out, outlen, in, inlen) == 1) {
		rc = 0;
	}
	EVP_PKEY_CTX_free(c);
	return rc;
}

int
escrow_unwrap(EVP_PKEY *priv, const uint8_t *in, size_t inlen, uint8_t *master)
{
	EVP_PKEY_CTX *c = oaep_ctx(priv, false);
	uint8_t      *buf = secmem_alloc(ESCROW_WRAP_MAX);
	size_t        n = ESCROW_WRAP_MAX;
	int           rc = -1;

	if (c != NULL && buf != NULL &&
	    EVP_PKEY_decrypt(c, buf, &n, in, inlen) == 1 &&
	    n == SEAL_MASTER_LEN) {
		memcpy(master, buf, SEAL_MASTER_LEN);
		rc = 0;
	}
	if (buf != NULL) {
		secmem_free(buf, ESCROW_WRAP_MAX);
	}
	EVP_PKEY_CTX_free(c);
	return rc;
}

int
escrow_master_id(const uint8_t *master, char id[65])
{
	static const uint8_t info[] = "vtpm-escrow-id-v1";
	uint8_t              out[32];

	if (kdf_hkdf_sha256(master, SEAL_MASTER_LEN, NULL, 0, info,
	                    sizeof(info) - 1, out, sizeof(out)) < 0) {
		return -1;
	}
	tek_hex(out, sizeof(out), id, 65);
	return 0;
}

int
escrow_file_store(const char *path, const struct escrow_file *f)
{
	char   hex[2 * ESCROW_WRAP_MAX + 1], *txt;
	cJSON *o = cJSON_CreateObject();
	int    rc = -1;

	tek_hex(f->wrapped, f->wlen, hex, 2 * f->wlen + 1);
	if (o == NULL || !cJSON_AddNumberToObject(o, "version", 1) ||
	    !cJSON_AddStringToObject(o, "alg", "RSA-OAEP-SHA256") ||
	    !cJSON_AddStringToObject(o, "controller_key", f->key_fp) ||
	    !cJSON_AddStringToObject(o, "master_id", f->master_id) ||
	    !cJSON_AddStringToObject(o, "wrapped", hex) ||
	    (txt = cJSON_Print(o)) == NULL) {
		cJSON_Delete(o);
		return -1;
	}
	rc = durable_write(path, txt, strlen(txt), 0600);
	free(txt);
	cJSON_Delete(o);
	return rc;
}

int
escrow_file_load(const char *path, struct escrow_file *f, char *err,
                 size_t errlen)
{
	char        *txt = NULL;
	size_t       len;
	cJSON       *o;
	const cJSON *fp, *id, *w;
	int          rc = -1;

	memset(f, 0, sizeof(*f));
	if (read_file(path, 16384, &txt, &len) < 0) {
		strfmt(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	o = cJSON_ParseWithLength(txt, len);
	fp = cJSON_GetObjectItemCaseSensitive(o, "controller_key");
	id = cJSON_GetObjectItemCaseSensitive(o, "master_id");
	w = cJSON_GetObjectItemCaseSensitive(o, "wrapped");
	if (!cJSON_IsString(fp) || strlen(fp->valuestring) != 64 ||
	    !cJSON_IsString(id) || strlen(id->valuestring) != 64 ||
	    !cJSON_IsString(w) ||
	    escrow_unhex(w->valuestring, f->wrapped, sizeof(f->wrapped),
	                 &f->wlen) < 0) {
		strfmt(err, errlen, "%s: not an escrow record", path);
		goto out;
	}
	memcpy(f->key_fp, fp->valuestring, 65);
	memcpy(f->master_id, id->valuestring, 65);
	rc = 0;
out:
	cJSON_Delete(o);
	free(txt);
	return rc;
}

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

int
escrow_recover(struct escrow *e, const struct key_admin_req *rq,
               struct key_admin_rep *rep)
{
	struct escrow_file f;
	struct seal_blob   nb;
	struct tpm        *t;
	bool               locked = false;
	uint8_t           *master, wrapped[ESCROW_WRAP_MAX], *check;
	size_t             wlen;
	char               err[REASON_LEN], id[65], pcrs[PCRS_LEN];
	TSS2_RC            rc;

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
	check = master + SEAL_MASTER_LEN;
	if (escrow_unwrap(e->transport, wrapped, wlen, master) < 0) {
		strfmt(
		    rep->reason, sizeof(rep->reason),
		    "cannot unwrap the master with the transport key (made for "
		    "another recovery?)");
		goto out;
	}
	if (escrow_master_id(master, id) < 0 || strcmp(id, f.master_id) != 0) {
		strfmt(
		    rep->reason, sizeof(rep->reason),
		    "the recovered key is not this device's master (master id "
		    "differs from %s)",
		    e->path);
		goto out;
	}
	t = broker_tpm_lock(e->b); /* locked even when NULL */
	locked = true;
	if (t == NULL) {
		rep->status = KEY_NO_HW_TPM;
		strfmt(rep->reason, sizeof(rep->reason), "no hardware TPM");
		goto out;
	}
	{
		const struct seal_blob *bl;
		uint32_t                mask = e->b->cfg.pcrs;

		if (broker_ensure_blob(e->b, &rc, err, sizeof(err)) == 0 &&
		    (bl = broker_blob(e->b)) != NULL) {
			mask = bl->mask; /* keep the sealed set */
		}
		if (seal_create(t, mask, master, &nb, &rc, err, sizeof(err)) <
		        0 ||
		    seal_unseal(t, &nb, check, &rc, err, sizeof(err)) < 0 ||
		    memcmp(master, check, SEAL_MASTER_LEN) != 0) {
			strfmt(rep->reason, sizeof(rep->reason),
			       "reseal under the current values: %s", err);
			goto out;
		}
	}
	update_crash_point("recover-sealed");
	if (seal_blob_store(e->b->sealpath, &nb) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "cannot write %s: %s",
		       e->b->sealpath, strerror(errno));
		goto out;
	}
	broker_drop_pending(e->b);
	broker_set_blob(e->b, &nb);
	EVP_PKEY_free(e->transport); /* one recovery per transport key */
	e->transport = NULL;
	seal_pcrs_format(nb.mask, pcrs, sizeof(pcrs));
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
