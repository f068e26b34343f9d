/*
 * attest.c: attestation in the key broker.
 *
 * The hardware EK (TCG template L-1, persistent 0x81010001, reused when
 * present) anchors a restricted, fixedTPM RSA-2048 signing key, the AK
 * (persistent 0x81010002). A verifier who knows the EK proves the AK with
 * MakeCredential; we answer with ActivateCredential (the EK needs a
 * PolicySecret(endorsement) session). The AK then signs X.509
 * certificates for vTPM EKs: the TBSCertificate is built with OpenSSL,
 * hashed on the TPM (TPM2_Hash gives the ticket a restricted key needs),
 * and signed with TPM2_Sign (the pure X.509 parts are in attest_cert.c).
 */
#include "sealer.h"
#include "common.h"
#include "log.h"
#include "tpm_ek.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#define AK_ATTRS                                                               \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |                      \
	 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |          \
	 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

static int
fail_rc(char *err, size_t errlen, const char *what, TSS2_RC rc)
{
	char b[128];

	strfmt(err, errlen, "%s: %s", what, tek_rc_str(rc, b, sizeof(b)));
	return -1;
}

static void
ak_template(TPM2B_PUBLIC *pub)
{
	TPMT_PUBLIC *p = &pub->publicArea;

	memset(pub, 0, sizeof(*pub));
	p->type = TPM2_ALG_RSA;
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = AK_ATTRS;
	p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
	p->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
	p->parameters.rsaDetail.keyBits = 2048;
}

/* A policy session satisfying the EK's authPolicy. */
static int
ek_session(ESYS_CONTEXT *e, ESYS_TR *s, char *err, size_t errlen)
{
	TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
	TSS2_RC      rc;

	*s = ESYS_TR_NONE;
	rc = Esys_StartAuthSession(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                           ESYS_TR_NONE, ESYS_TR_NONE, NULL,
	                           TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, s);
	if (rc != TSS2_RC_SUCCESS) {
		return fail_rc(err, errlen, "StartAuthSession (EK policy)", rc);
	}
	rc = Esys_PolicySecret(e, ESYS_TR_RH_ENDORSEMENT, *s, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL, 0,
	                       NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		(void) Esys_FlushContext(e, *s);
		*s = ESYS_TR_NONE;
		return fail_rc(err, errlen, "PolicySecret(endorsement)", rc);
	}
	return 0;
}

static int
handle_of(ESYS_CONTEXT *e, uint32_t h, ESYS_TR *tr, char *err, size_t errlen)
{
	TSS2_RC rc = Esys_TR_FromTPMPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE,
	                                   ESYS_TR_NONE, tr);
	char    what[64];

	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "TR_FromTPMPublic 0x%x", h);
		return fail_rc(err, errlen, what, rc);
	}
	return 0;
}

/* Create the AK under the EK and persist it. */
static int
ak_create(struct tpm *t, char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC           tpl, *pub = NULL;
	TPM2B_PRIVATE         *priv = NULL;
	TPM2B_DATA             outside = {0};
	TPML_PCR_SELECTION     pcrs = {0};
	ESYS_TR                ek = ESYS_TR_NONE, s = ESYS_TR_NONE;
	ESYS_TR                ak = ESYS_TR_NONE, out;
	TSS2_RC                rc;
	int                    ret = -1;

	ak_template(&tpl);
	if (handle_of(t->ectx, t->h.ek, &ek, err, errlen) < 0 ||
	    ek_session(t->ectx, &s, err, errlen) < 0) {
		goto out;
	}
	rc = Esys_Create(t->ectx, ek, s, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
	                 &tpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
	tpm_flush(t, &s);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen, "Create (AK under EK)", rc);
		goto out;
	}
	if (ek_session(t->ectx, &s, err, errlen) < 0) {
		goto out;
	}
	rc = Esys_Load(t->ectx, ek, s, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub,
	               &ak);
	tpm_flush(t, &s);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen, "Load (AK)", rc);
		goto out;
	}
	rc = Esys_EvictControl(t->ectx, ESYS_TR_RH_OWNER, ak, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE, t->h.ak, &out);
	tpm_flush(t, &ak);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen, "EvictControl (AK)", rc);
		goto out;
	}
	(void) Esys_TR_Close(t->ectx, &out);
	ret = 0;
out:
	if (ek != ESYS_TR_NONE) {
		(void) Esys_TR_Close(t->ectx, &ek);
	}
	Esys_Free(pub);
	Esys_Free(priv);
	return ret;
}

/* The TPM maker's EK certificates, as a physical TPM ships them in NV
 * (read with owner auth, as tpm2_getekcertificate does). None is fine:
 * the verifier then refuses the device unless told to trust it on first
 * use. The RSA one must certify the EK at t->h.ek, the key a
 * credential is made for. */
static void
hw_ek_certs(struct attest *a, struct tpm *t)
{
	static const struct {
		uint32_t index;
		size_t   off;
	} nv[] = {
	    {TEK_EKCERT_INDEX, offsetof(struct attest, hw_ek_cert)},
	    {TEK_EKCERT_ECC_INDEX, offsetof(struct attest, hw_ek_cert_ecc)},
	};
	uint8_t der[TEK_CERT_MAX];
	char    e[256];

	for (size_t i = 0; i < sizeof(nv) / sizeof(nv[0]); i++) {
		char *pem = (char *) a + nv[i].off;
		int   n = tek_nv_read(t->ectx, nv[i].index, der, sizeof(der), e,
		                      sizeof(e));

		pem[0] = '\0';
		if (n < 0) {
			log_warnx("attestation: hardware EK certificate NV "
			          "0x%x: %s",
			          nv[i].index, e);
		} else if (n > 0 && tek_der_to_pem(der, (size_t) n, pem,
		                                   ATTEST_PEM_LEN) < 0) {
			log_warnx("attestation: NV 0x%x holds no X.509 "
			          "certificate (%d bytes)",
			          nv[i].index, n);
			pem[0] = '\0';
		}
	}
}

int
attest_setup(struct attest *a, struct tpm *t, char *err, size_t errlen)
{
	TPM2B_PUBLIC *pub = NULL;
	char          e2[256];
	int           r;
	uint64_t      t0 = now_ms();
	bool          made_ek = false, made_ak = false;

	if (a->ready) {
		return 0;
	}
	r = tek_read_public(t->ectx, t->h.ek, &pub, e2, sizeof(e2));
	if (r < 0) {
		strfmt(err, errlen, "hardware EK: %s", e2);
		return -1;
	}
	if (r == 1) {
		if (tek_ek_provision(t->ectx, t->h.ek, &pub, e2, sizeof(e2)) <
		    0) {
			strfmt(err, errlen, "hardware EK: %s", e2);
			return -1;
		}
		made_ek = true;
	}
	if (!tek_is_ek_template(pub)) {
		Esys_Free(pub);
		strfmt(err, errlen,
		       "persistent handle 0x%x holds a key that is not an "
		       "RSA-2048 EK of the standard template",
		       t->h.ek);
		return -1;
	}
	a->ek_pub = *pub;
	Esys_Free(pub);
	r = tek_read_public(t->ectx, t->h.ak, &pub, e2, sizeof(e2));
	if (r < 0) {
		strfmt(err, errlen, "AK: %s", e2);
		return -1;
	}
	if (r == 1) {
		if (ak_create(t, e2, sizeof(e2)) < 0 ||
		    tek_read_public(t->ectx, t->h.ak, &pub, e2, sizeof(e2)) !=
		        0) {
			strfmt(err, errlen, "AK: %s", e2);
			return -1;
		}
		made_ak = true;
	}
	if (pub->publicArea.type != TPM2_ALG_RSA ||
	    pub->publicArea.objectAttributes != AK_ATTRS) {
		Esys_Free(pub);
		strfmt(err, errlen,
		       "persistent handle 0x%x holds a key that is not a "
		       "restricted fixedTPM signing key",
		       t->h.ak);
		return -1;
	}
	a->ak_pub = *pub;
	Esys_Free(pub);
	if (tek_pub_name(&a->ak_pub, &a->ak_name) < 0) {
		strfmt(err, errlen, "AK: cannot compute its name");
		return -1;
	}
	hex_encode(a->ak_name.name, a->ak_name.size, a->device_id,
	           sizeof(a->device_id));
	hw_ek_certs(a, t);
	a->ready = true;
	log_info("attestation: EK 0x%x %s, AK 0x%x %s, device id %s, maker "
	         "EK certificate %s (%llu ms)",
	         t->h.ek, made_ek ? "created" : "found", t->h.ak,
	         made_ak ? "created" : "found", a->device_id,
	         a->hw_ek_cert[0] ? "in NV 0x1c00002" : "none",
	         (unsigned long long) (now_ms() - t0));
	return 0;
}

/* ---- requests ---- */

/* Sign tbs with the AK: TPM2_Hash (ticket), TPM2_Sign. */
static int
ak_sign(struct tpm *t, const uint8_t *tbs, size_t len, uint8_t *sig,
        size_t *siglen, char *err, size_t errlen)
{
	TPM2B_MAX_BUFFER   data;
	TPM2B_DIGEST      *dg = NULL;
	TPMT_TK_HASHCHECK *tk = NULL;
	TPMT_SIGNATURE    *s = NULL;
	TPMT_SIG_SCHEME    scheme = {.scheme = TPM2_ALG_RSASSA};
	ESYS_TR            ak = ESYS_TR_NONE;
	TSS2_RC            rc;
	int                ret = -1;

	if (len > sizeof(data.buffer)) {
		strfmt(err, errlen,
		       "TBSCertificate of %zu bytes (TPM2_Hash takes "
		       "%zu)",
		       len, sizeof(data.buffer));
		return -1;
	}
	data.size = (UINT16) len;
	memcpy(data.buffer, tbs, len);
	TPM_RETRY(rc, Esys_Hash(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
	                        ESYS_TR_NONE, &data, TPM2_ALG_SHA256,
	                        ESYS_TR_RH_OWNER, &dg, &tk));
	if (rc != TSS2_RC_SUCCESS) {
		return fail_rc(err, errlen, "TPM2_Hash", rc);
	}
	if (handle_of(t->ectx, t->h.ak, &ak, err, errlen) < 0) {
		goto out;
	}
	scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
	TPM_RETRY(rc, Esys_Sign(t->ectx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                        ESYS_TR_NONE, dg, &scheme, tk, &s));
	(void) Esys_TR_Close(t->ectx, &ak);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen, "TPM2_Sign (AK)", rc);
		goto out;
	}
	if (s->signature.rsassa.sig.size > *siglen) {
		strfmt(err, errlen, "signature too long");
		goto out;
	}
	*siglen = s->signature.rsassa.sig.size;
	memcpy(sig, s->signature.rsassa.sig.buffer, *siglen);
	ret = 0;
out:
	Esys_Free(dg);
	Esys_Free(tk);
	Esys_Free(s);
	return ret;
}

static int
certify_ek(struct attest *a, struct tpm *t, const struct attest_req *req,
           struct attest_rep *rep, char *err, size_t errlen)
{
	TPM2B_PUBLIC ek;
	EVP_PKEY    *pk;
	uint8_t      serial[16], sig[512], *tbs = NULL, *der = NULL;
	size_t       tbslen = 0, siglen = sizeof(sig), derlen = 0;
	int          ret = -1;

	if (tek_pub_from_hex(req->ek_pub, &ek) < 0 ||
	    (pk = tek_pub_to_pkey(&ek)) == NULL) {
		strfmt(err, errlen,
		       "ek_pub is not a hex TPM2B_PUBLIC of an RSA or "
		       "ECC P-256 key");
		return -1;
	}
	if (tek_ek_alg(&ek) == TPM2_ALG_NULL) {
		strfmt(err, errlen,
		       "ek_pub follows neither EK template L-1 (RSA) nor L-2 "
		       "(ECC P-256)");
		EVP_PKEY_free(pk);
		return -1;
	}
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		strfmt(err, errlen, "RAND_bytes failed");
		EVP_PKEY_free(pk);
		return -1;
	}
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x40; /* and 16 bytes long */
	if (attest_ek_tbs(pk, req->uuid, a->device_id, serial, &tbs, &tbslen) <
	    0) {
		strfmt(err, errlen, "cannot build the TBSCertificate");
		goto out;
	}
	if (ak_sign(t, tbs, tbslen, sig, &siglen, err, errlen) < 0) {
		goto out;
	}
	if (attest_cert_assemble(tbs, tbslen, sig, siglen, &der, &derlen) < 0 ||
	    tek_der_to_pem(der, derlen, rep->ek_cert, sizeof(rep->ek_cert)) <
	        0) {
		strfmt(err, errlen, "cannot assemble the certificate");
		goto out;
	}
	a->certs++;
	ret = 0;
out:
	OPENSSL_free(tbs);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return ret;
}

static int
activate(struct attest *a, struct tpm *t, const struct attest_req *req,
         struct attest_rep *rep, char *err, size_t errlen)
{
	TPM2B_ID_OBJECT        blob = {0};
	TPM2B_ENCRYPTED_SECRET sec = {0};
	TPM2B_DIGEST          *info = NULL;
	uint8_t                buf[sizeof(TPM2B_ENCRYPTED_SECRET)];
	ESYS_TR                ek = ESYS_TR_NONE, ak = ESYS_TR_NONE, s;
	size_t                 off = 0;
	TSS2_RC                rc;
	int                    n, ret = -1;

	(void) a; /* the handles are the TPM context's */
	n = hex_decode_str(req->credential_blob, buf, sizeof(buf));
	if (n <= 0 || Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(buf, (size_t) n, &off,
	                                                &blob) != 0) {
		strfmt(err, errlen,
		       "credential_blob is not a hex TPM2B_ID_OBJECT");
		return -1;
	}
	off = 0;
	n = hex_decode_str(req->secret, buf, sizeof(buf));
	if (n <= 0 || Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(
	                  buf, (size_t) n, &off, &sec) != 0) {
		strfmt(err, errlen,
		       "secret is not a hex TPM2B_ENCRYPTED_SECRET");
		return -1;
	}
	if (handle_of(t->ectx, t->h.ek, &ek, err, errlen) < 0 ||
	    handle_of(t->ectx, t->h.ak, &ak, err, errlen) < 0 ||
	    ek_session(t->ectx, &s, err, errlen) < 0) {
		goto out;
	}
	rc = Esys_ActivateCredential(t->ectx, ak, ek, ESYS_TR_PASSWORD, s,
	                             ESYS_TR_NONE, &blob, &sec, &info);
	tpm_flush(t, &s);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen,
		        "ActivateCredential (challenge not made for this "
		        "TPM's EK and AK?)",
		        rc);
		goto out;
	}
	hex_encode(info->buffer, info->size, rep->credential,
	           sizeof(rep->credential));
	ret = 0;
out:
	Esys_Free(info);
	if (ek != ESYS_TR_NONE) {
		(void) Esys_TR_Close(t->ectx, &ek);
	}
	if (ak != ESYS_TR_NONE) {
		(void) Esys_TR_Close(t->ectx, &ak);
	}
	return ret;
}

static void
ak_cert_path(const struct attest *a, char *p, size_t len)
{
	(void) path_join(p, len, "%s/%s", a->vault, ATTEST_AK_CERT_FILE);
}

static int
set_ak_cert(struct attest *a, const struct attest_req *req, char *err,
            size_t errlen)
{
	BIO      *bio = BIO_new_mem_buf(req->ak_cert, -1);
	X509     *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *mine = tek_pub_to_pkey(&a->ak_pub), *theirs;
	char      path[PATH_LEN];
	int       ret = -1;

	theirs = x ? X509_get0_pubkey(x) : NULL;
	if (theirs == NULL) {
		strfmt(err, errlen, "ak_cert is not a PEM certificate");
	} else if (mine == NULL || EVP_PKEY_eq(mine, theirs) != 1) {
		strfmt(err, errlen,
		       "ak_cert certifies another key than this AK");
	} else {
		ak_cert_path(a, path, sizeof(path));
		if (durable_write(path, req->ak_cert, strlen(req->ak_cert),
		                  0644) < 0) {
			strfmt(err, errlen, "write %s: %s", path,
			       strerror(errno));
		} else {
			log_info("attestation: AK certificate stored in %s",
			         path);
			ret = 0;
		}
	}
	EVP_PKEY_free(mine);
	X509_free(x);
	BIO_free(bio);
	return ret;
}

/* The vault PCR set and its values now into rep. */
static int
pcrs_now(const struct attest *a, struct tpm *t, struct attest_rep *rep,
         char *err, size_t errlen)
{
	TSS2_RC rc;

	pcrset_format(a->pcrs, rep->pcrs, sizeof(rep->pcrs));
	return seal_pcr_read(t, a->pcrs, rep->values.v, &rc, err, errlen);
}

static int
info(struct attest *a, struct tpm *t, struct attest_rep *rep, char *err,
     size_t errlen)
{
	char   path[PATH_LEN], *buf = NULL;
	size_t len = 0;

	memcpy(rep->hw_ek_cert, a->hw_ek_cert, sizeof(rep->hw_ek_cert));
	memcpy(rep->hw_ek_cert_ecc, a->hw_ek_cert_ecc,
	       sizeof(rep->hw_ek_cert_ecc));
	(void) tek_pub_to_hex(&a->ek_pub, rep->ek_pub, sizeof(rep->ek_pub));
	(void) tek_pub_to_hex(&a->ak_pub, rep->ak_pub, sizeof(rep->ak_pub));
	ak_cert_path(a, path, sizeof(path));
	if (read_file(path, sizeof(rep->ak_cert) - 1, &buf, &len) == 0) {
		memcpy(rep->ak_cert, buf, len);
		rep->ak_cert[len] = '\0';
		free(buf);
	}
	return pcrs_now(a, t, rep, err, errlen);
}

/* TPM2_Quote by the AK over the vault PCR set (sha256) with the
 * verifier's nonce as qualifyingData; the values read right after go
 * along (the verifier recomputes the quote's pcrDigest from them, so a
 * PCR changing in between fails the check instead of passing it). */
static int
quote(struct attest *a, struct tpm *t, const struct attest_req *req,
      struct attest_rep *rep, char *err, size_t errlen)
{
	TPM2B_DATA         nonce = {0};
	TPML_PCR_SELECTION sel;
	TPMT_SIG_SCHEME    scheme = {.scheme = TPM2_ALG_RSASSA};
	TPM2B_ATTEST      *q = NULL;
	TPMT_SIGNATURE    *sig = NULL;
	ESYS_TR            ak = ESYS_TR_NONE;
	TSS2_RC            rc;
	int                n, ret = -1;

	n = hex_decode_str(req->nonce, nonce.buffer, sizeof(nonce.buffer));
	if (n <= 0 || n > 64) {
		strfmt(err, errlen, "nonce must be 1 to 64 bytes of hex");
		return -1;
	}
	nonce.size = (UINT16) n;
	seal_pcr_selection(a->pcrs, &sel);
	scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
	if (handle_of(t->ectx, t->h.ak, &ak, err, errlen) < 0) {
		return -1;
	}
	TPM_RETRY(rc,
	          Esys_Quote(t->ectx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                     ESYS_TR_NONE, &nonce, &scheme, &sel, &q, &sig));
	(void) Esys_TR_Close(t->ectx, &ak);
	if (rc != TSS2_RC_SUCCESS) {
		fail_rc(err, errlen, "TPM2_Quote (AK)", rc);
		goto out;
	}
	if (2 * (size_t) q->size + 1 > sizeof(rep->quote) ||
	    2 * (size_t) sig->signature.rsassa.sig.size + 1 >
	        sizeof(rep->signature)) {
		strfmt(err, errlen, "quote or signature too long");
		goto out;
	}
	hex_encode(q->attestationData, q->size, rep->quote, sizeof(rep->quote));
	hex_encode(sig->signature.rsassa.sig.buffer,
	           sig->signature.rsassa.sig.size, rep->signature,
	           sizeof(rep->signature));
	ret = pcrs_now(a, t, rep, err, errlen);
out:
	Esys_Free(q);
	Esys_Free(sig);
	return ret;
}

int
attest_handle(struct attest *a, struct tpm *t, pthread_mutex_t *mu,
              const struct attest_req *req, uid_t peer, uid_t launcher,
              struct attest_rep *rep)
{
	char     err[REASON_LEN] = "";
	int      ret = -1;
	uint64_t t0 = now_ms();

	memset(rep, 0, sizeof(*rep));
	memcpy(rep->uuid, req->uuid, sizeof(rep->uuid));
	if (peer != launcher) {
		strfmt(rep->reason, sizeof(rep->reason),
		       "uid %d may not ask for attestation", (int) peer);
		log_warnx("attest %s refused: %s", attest_op_name(req->op),
		          rep->reason);
		return 0;
	}
	pthread_mutex_lock(mu);
	if (t->tcti[0] == '\0') {
		strfmt(rep->reason, sizeof(rep->reason),
		       "no hardware TPM (--tcti none): no attestation key");
		goto out;
	}
	if (!tpm_is_open(t) && tpm_reopen(t, err, sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "no hardware TPM: %s",
		       err);
		goto out;
	}
	if (attest_setup(a, t, err, sizeof(err)) < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
		goto out;
	}
	memcpy(rep->device_id, a->device_id, sizeof(rep->device_id));
	switch (req->op) {
	case AOP_INFO:
		ret = info(a, t, rep, err, sizeof(err));
		break;
	case AOP_QUOTE:
		ret = quote(a, t, req, rep, err, sizeof(err));
		break;
	case AOP_ACTIVATE:
		ret = activate(a, t, req, rep, err, sizeof(err));
		break;
	case AOP_SET_AK_CERT:
		ret = set_ak_cert(a, req, err, sizeof(err));
		break;
	case AOP_CERTIFY_EK:
		ret = certify_ek(a, t, req, rep, err, sizeof(err));
		break;
	default:
		strfmt(err, sizeof(err), "unknown op %d", req->op);
		break;
	}
	if (ret < 0) {
		strfmt(rep->reason, sizeof(rep->reason), "%s", err);
	}
out:
	pthread_mutex_unlock(mu);
	rep->ok = ret == 0;
	if (rep->ok) {
		log_info("attest %s for %s: ok (%llu ms)",
		         attest_op_name(req->op), req->uuid,
		         (unsigned long long) (now_ms() - t0));
	} else {
		log_warnx("attest %s for %s failed: %s",
		          attest_op_name(req->op), req->uuid, rep->reason);
	}
	return 0;
}
