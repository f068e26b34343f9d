/* seal.c: the vault PCR set, the SRK, sealing the master key under a
 * PolicyPCR, the policy-session unseal, and the sealed-blob file. */
#include "sealer.h"
#include "tpm_ek.h"
#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#define SEAL_FILE_MAX (64 * 1024)

/* ---- PCR set ---- */
static void
pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	sel->pcrSelections[0].pcrSelect[0] = mask & 0xff;
	sel->pcrSelections[0].pcrSelect[1] = (mask >> 8) & 0xff;
	sel->pcrSelections[0].pcrSelect[2] = (mask >> 16) & 0xff;
}

/* ---- SRK ---- */

/* The standard ECC P-256 SRK template (TCG provisioning guidance). */
static const TPM2B_PUBLIC srk_template = {
    .size = 0,
    .publicArea =
        {
            .type = TPM2_ALG_ECC,
            .nameAlg = TPM2_ALG_SHA256,
            .objectAttributes =
                (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                 TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                 TPMA_OBJECT_DECRYPT),
            .authPolicy = {.size = 0},
            .parameters.eccDetail =
                {
                    .symmetric =
                        {
                            .algorithm = TPM2_ALG_AES,
                            .keyBits.aes = 128,
                            .mode.aes = TPM2_ALG_CFB,
                        },
                    .scheme = {.scheme = TPM2_ALG_NULL},
                    .curveID = TPM2_ECC_NIST_P256,
                    .kdf = {.scheme = TPM2_ALG_NULL},
                },
            .unique.ecc = {.x = {.size = 32}, .y = {.size = 32}},
        },
};

/* Why pub is not the standard SRK, or NULL when it is. */
static const char *
srk_mismatch(const TPMT_PUBLIC *p)
{
	const TPMT_PUBLIC    *w = &srk_template.publicArea;
	const TPMS_ECC_PARMS *a = &p->parameters.eccDetail;
	const TPMS_ECC_PARMS *b = &w->parameters.eccDetail;

	if (p->type != w->type) {
		return "not an ECC key";
	}
	if (p->nameAlg != w->nameAlg) {
		return "name algorithm is not sha256";
	}
	if (p->objectAttributes != w->objectAttributes) {
		return "object attributes differ from a storage key's";
	}
	if (p->authPolicy.size != 0) {
		return "it has an authPolicy";
	}
	if (a->curveID != b->curveID) {
		return "curve is not NIST P-256";
	}
	if (a->symmetric.algorithm != b->symmetric.algorithm ||
	    a->symmetric.keyBits.aes != b->symmetric.keyBits.aes ||
	    a->symmetric.mode.aes != b->symmetric.mode.aes) {
		return "symmetric scheme is not AES-128-CFB";
	}
	if (a->scheme.scheme != TPM2_ALG_NULL ||
	    a->kdf.scheme != TPM2_ALG_NULL) {
		return "scheme or kdf is set";
	}
	return NULL;
}

static bool
rc_is_handle(TSS2_RC rc)
{
	TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;

	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER &&
	       (base & TPM2_RC_FMT1) &&
	       (base & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_HANDLE;
}

int
seal_srk(struct tpm *t, TSS2_RC *rc, char *err, size_t errlen)
{
	ESYS_TR              h = ESYS_TR_NONE, prim = ESYS_TR_NONE;
	TPM2B_PUBLIC        *pub = NULL, *opub = NULL;
	TPM2B_NAME          *name = NULL, *qname = NULL;
	TPM2B_CREATION_DATA *cdata = NULL;
	TPM2B_DIGEST        *chash = NULL;
	TPMT_TK_CREATION    *ticket = NULL;
	char                 rcs[128];
	const char          *why;

	*rc = TSS2_RC_SUCCESS;
	if (t->srk != ESYS_TR_NONE) {
		return 0;
	}
	TPM_RETRY(*rc,
	          Esys_TR_FromTPMPublic(t->ectx, SEAL_SRK_HANDLE, ESYS_TR_NONE,
	                                ESYS_TR_NONE, ESYS_TR_NONE, &h));
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc, Esys_ReadPublic(t->ectx, h, ESYS_TR_NONE,
		                               ESYS_TR_NONE, ESYS_TR_NONE, &pub,
		                               &name, &qname));
		if (*rc != TSS2_RC_SUCCESS) {
			snprintf(err, errlen, "SRK 0x%x: ReadPublic: %s",
			         SEAL_SRK_HANDLE,
			         tpm_rc_str(*rc, rcs, sizeof(rcs)));
			goto fail;
		}
		if ((why = srk_mismatch(&pub->publicArea)) != NULL) {
			snprintf(
			    err, errlen,
			    "persistent handle 0x%x holds a key that is not "
			    "the standard ECC P-256 SRK (%s): refusing to use "
			    "or replace it",
			    SEAL_SRK_HANDLE, why);
			goto fail;
		}
		Esys_Free(pub);
		Esys_Free(name);
		Esys_Free(qname);
		t->srk = h;
		return 0;
	}
	if (!rc_is_handle(*rc)) {
		snprintf(err, errlen, "SRK 0x%x: lookup: %s", SEAL_SRK_HANDLE,
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	/* absent: create it in the owner hierarchy and make it persistent */
	{
		TPM2B_SENSITIVE_CREATE insens = {0};
		TPM2B_DATA             outside = {0};
		TPML_PCR_SELECTION     cpcr = {0};

		TPM_RETRY(*rc, Esys_CreatePrimary(
		                   t->ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
		                   ESYS_TR_NONE, ESYS_TR_NONE, &insens,
		                   &srk_template, &outside, &cpcr, &prim, &opub,
		                   &cdata, &chash, &ticket));
	}
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK: CreatePrimary (owner): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		goto fail;
	}
	TPM_RETRY(*rc, Esys_EvictControl(t->ectx, ESYS_TR_RH_OWNER, prim,
	                                 ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                                 ESYS_TR_NONE, SEAL_SRK_HANDLE, &h));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK: EvictControl to 0x%x: %s",
		         SEAL_SRK_HANDLE, tpm_rc_str(*rc, rcs, sizeof(rcs)));
		goto fail;
	}
	log_info("created the SRK (ECC P-256) at persistent handle 0x%x",
	         SEAL_SRK_HANDLE);
	tpm_flush(t, &prim);
	Esys_Free(opub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	t->srk = h;
	return 0;
fail:
	if (h != ESYS_TR_NONE && prim == ESYS_TR_NONE) {
		(void) Esys_TR_Close(t->ectx, &h);
	}
	tpm_flush(t, &prim);
	Esys_Free(pub);
	Esys_Free(name);
	Esys_Free(qname);
	Esys_Free(opub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	if (*rc == TSS2_RC_SUCCESS) {
		*rc = TSS2_ESYS_RC_BAD_VALUE;
	}
	return -1;
}

/* ---- PCRs and policies ---- */

int
seal_pcr_read(struct tpm *t, uint32_t mask, uint8_t values[][32], TSS2_RC *rc,
              char *err, size_t errlen)
{
	uint32_t left = mask;
	char     rcs[128];

	while (left != 0) {
		TPML_PCR_SELECTION sel, *out = NULL;
		TPML_DIGEST       *vals = NULL;
		UINT32             upd;
		uint32_t           got;
		int                k = 0;

		pcr_selection(left, &sel);
		TPM_RETRY(*rc,
		          Esys_PCR_Read(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
		                        ESYS_TR_NONE, &sel, &upd, &out, &vals));
		if (*rc != TSS2_RC_SUCCESS) {
			snprintf(err, errlen, "PCR_Read sha256: %s",
			         tpm_rc_str(*rc, rcs, sizeof(rcs)));
			return -1;
		}
		got = 0;
		if (out->count == 1 &&
		    out->pcrSelections[0].hash == TPM2_ALG_SHA256) {
			const uint8_t *ps = out->pcrSelections[0].pcrSelect;
			got = (uint32_t) ps[0] | (uint32_t) ps[1] << 8 |
			      (uint32_t) ps[2] << 16;
		}
		got &= left;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			if (!(got & (1u << i))) {
				continue;
			}
			if (k >= (int) vals->count ||
			    vals->digests[k].size != 32) {
				got = 0;
				break;
			}
			memcpy(values[i], vals->digests[k].buffer, 32);
			k++;
		}
		Esys_Free(out);
		Esys_Free(vals);
		if (got == 0) {
			snprintf(err, errlen,
			         "PCR_Read: the TPM returned no sha256 values "
			         "(is the sha256 bank allocated?)");
			*rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
			return -1;
		}
		left &= ~got;
	}
	return 0;
}

/* pcrDigest for PolicyPCR: sha256 over the values in index order. */
static void
pcr_composite(uint32_t mask, const uint8_t values[][32], TPM2B_DIGEST *d)
{
	EVP_MD_CTX  *c = EVP_MD_CTX_new();
	unsigned int n = 0;

	memset(d, 0, sizeof(*d));
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		if (mask & (1u << i)) {
			EVP_DigestUpdate(c, values[i], 32);
		}
	}
	EVP_DigestFinal_ex(c, d->buffer, &n);
	d->size = (UINT16) n;
	EVP_MD_CTX_free(c);
}

/* A trial session computes the PolicyPCR digest for given values (current
 * or predicted: issue 8 uses the same for its second branch). */
static int
branch_digest(struct tpm *t, struct seal_branch *br, TSS2_RC *rc, char *err,
              size_t errlen)
{
	TPMT_SYM_DEF       sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR            sess = ESYS_TR_NONE;
	TPML_PCR_SELECTION sel;
	TPM2B_DIGEST       pd, *dig = NULL;
	char               rcs[128];

	pcr_selection(br->mask, &sel);
	pcr_composite(br->mask, (const uint8_t(*)[32]) br->values, &pd);
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL,
	                   &sym, TPM2_ALG_SHA256, &sess));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "StartAuthSession (trial): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	TPM_RETRY(*rc, Esys_PolicyPCR(t->ectx, sess, ESYS_TR_NONE, ESYS_TR_NONE,
	                              ESYS_TR_NONE, &pd, &sel));
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc, Esys_PolicyGetDigest(t->ectx, sess, ESYS_TR_NONE,
		                                    ESYS_TR_NONE, ESYS_TR_NONE,
		                                    &dig));
	}
	tpm_flush(t, &sess);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyPCR (trial): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	br->digest = *dig;
	Esys_Free(dig);
	return 0;
}

/* Overwrite the command/response buffer ESAPI keeps in its context, so no
 * plaintext key stays there after a Create or Unseal. */
static void
scrub_esys_buffer(struct tpm *t)
{
	TPM2B_DIGEST *r = NULL;
	TSS2_RC       rc;

	TPM_RETRY(rc, Esys_GetRandom(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
	                             ESYS_TR_NONE, 48, &r));
	if (rc == TSS2_RC_SUCCESS) {
		explicit_bzero(r, sizeof(*r));
	}
	Esys_Free(r);
}

/* Overwrite the stack below the caller: ESAPI's parameter encryption
 * works on a stack copy of the command's first parameter (the sensitive
 * data of a Create) and of the response's (the Unseal), and leaves it
 * there. Found by update_escrow.sh's memory scan of the broker. */
__attribute__((noinline)) static void
burn_stack(void)
{
	volatile uint8_t pad[64 * 1024];

	explicit_bzero((void *) pad, sizeof(pad));
}

/* An HMAC or policy session salted with the SRK and AES-128-CFB parameter
 * encryption: the key never crosses the wire to the TPM in clear. */
static int
start_session(struct tpm *t, TPM2_SE type, TPMA_SESSION attrs, bool plain,
              ESYS_TR *s, TSS2_RC *rc, char *err, size_t errlen)
{
	TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES,
	                    .keyBits.aes = 128,
	                    .mode.aes = TPM2_ALG_CFB};
	char         rcs[128];

	*s = ESYS_TR_NONE;
	if (plain) {
		/* bench reference only: unsalted, no parameter encryption */
		sym.algorithm = TPM2_ALG_NULL;
		attrs = 0;
	}
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, plain ? ESYS_TR_NONE : t->srk, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type,
	                   &sym, TPM2_ALG_SHA256, s));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "StartAuthSession (salted by SRK): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		*s = ESYS_TR_NONE;
		return -1;
	}
	*rc = Esys_TRSess_SetAttributes(
	    t->ectx, *s, TPMA_SESSION_CONTINUESESSION | attrs, 0xff);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "TRSess_SetAttributes: %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		tpm_flush(t, s);
		return -1;
	}
	return 0;
}

/* The PolicyOR digest over the branches' digests (trial session). */
static int
or_digest(struct tpm *t, const struct seal_blob *b, TPM2B_DIGEST *out,
          TSS2_RC *rc, char *err, size_t errlen)
{
	TPMT_SYM_DEF  sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR       sess = ESYS_TR_NONE;
	TPML_DIGEST   list = {.count = (UINT32) b->nbranches};
	TPM2B_DIGEST *dig = NULL;
	char          rcs[128];

	for (int k = 0; k < b->nbranches; k++) {
		list.digests[k] = b->branch[k].digest;
	}
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL,
	                   &sym, TPM2_ALG_SHA256, &sess));
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc,
		          Esys_PolicyOR(t->ectx, sess, ESYS_TR_NONE,
		                        ESYS_TR_NONE, ESYS_TR_NONE, &list));
	}
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc, Esys_PolicyGetDigest(t->ectx, sess, ESYS_TR_NONE,
		                                    ESYS_TR_NONE, ESYS_TR_NONE,
		                                    &dig));
	}
	tpm_flush(t, &sess);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyOR (trial): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	*out = *dig;
	Esys_Free(dig);
	return 0;
}

int
seal_create(struct tpm *t, uint32_t mask, const uint8_t *master,
            struct seal_blob *b, TSS2_RC *rc, char *err, size_t errlen)
{
	return seal_create_or(t, mask, master, NULL, b, rc, err, errlen);
}

int
seal_create_or(struct tpm *t, uint32_t mask, const uint8_t *master,
               const uint8_t (*predicted)[32], struct seal_blob *b, TSS2_RC *rc,
               char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE insens;
	TPM2B_PUBLIC           tmpl;
	TPM2B_DATA             outside = {0};
	TPML_PCR_SELECTION     cpcr = {0};
	TPM2B_PRIVATE         *opriv = NULL;
	TPM2B_PUBLIC          *opub = NULL;
	TPM2B_CREATION_DATA   *cdata = NULL;
	TPM2B_DIGEST          *chash = NULL;
	TPMT_TK_CREATION      *ticket = NULL;
	ESYS_TR                enc = ESYS_TR_NONE;
	char                   rcs[128];

	memset(b, 0, sizeof(*b));
	b->mask = mask;
	b->nbranches = 1;
	b->branch[0].mask = mask;
	if (seal_srk(t, rc, err, errlen) < 0 ||
	    seal_pcr_read(t, mask, b->branch[0].values, rc, err, errlen) < 0 ||
	    branch_digest(t, &b->branch[0], rc, err, errlen) < 0) {
		return -1;
	}
	b->auth_policy = b->branch[0].digest;
	if (predicted != NULL) {
		/* second branch: the values a planned update will produce */
		b->nbranches = 2;
		b->branch[1].mask = mask;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			if (mask & (1u << i)) {
				memcpy(b->branch[1].values[i], predicted[i],
				       32);
			}
		}
		if (branch_digest(t, &b->branch[1], rc, err, errlen) < 0 ||
		    or_digest(t, b, &b->auth_policy, rc, err, errlen) < 0) {
			return -1;
		}
	}

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	/* no userWithAuth: only the policy can authorize the unseal */
	tmpl.publicArea.objectAttributes =
	    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
	tmpl.publicArea.authPolicy = b->auth_policy;
	tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme =
	    TPM2_ALG_NULL;

	if (start_session(t, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, false, &enc,
	                  rc, err, errlen) < 0) {
		return -1;
	}
	memset(&insens, 0, sizeof(insens));
	insens.sensitive.data.size = SEAL_MASTER_LEN;
	memcpy(insens.sensitive.data.buffer, master, SEAL_MASTER_LEN);
	TPM_RETRY(*rc,
	          Esys_Create(t->ectx, t->srk, ESYS_TR_PASSWORD, enc,
	                      ESYS_TR_NONE, &insens, &tmpl, &outside, &cpcr,
	                      &opriv, &opub, &cdata, &chash, &ticket));
	explicit_bzero(&insens, sizeof(insens));
	tpm_flush(t, &enc);
	scrub_esys_buffer(t);
	burn_stack();
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "Create (sealed master under SRK): %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	b->pub = *opub;
	b->priv = *opriv;
	Esys_Free(opriv);
	Esys_Free(opub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	return 0;
}

static int
unseal(struct tpm *t, const struct seal_blob *b, uint8_t *master, bool plain,
       TSS2_RC *rc, char *err, size_t errlen)
{
	ESYS_TR               obj = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TPM2B_SENSITIVE_DATA *out = NULL;
	TPML_PCR_SELECTION    sel;
	TPM2B_DIGEST          empty = {0};
	char                  rcs[128];
	int                   ret = -1;

	if (seal_srk(t, rc, err, errlen) < 0) {
		return -1;
	}
	TPM_RETRY(*rc,
	          Esys_Load(t->ectx, t->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                    ESYS_TR_NONE, &b->priv, &b->pub, &obj));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(
		    err, errlen, "Load sealed master under SRK 0x%x: %s%s",
		    SEAL_SRK_HANDLE, tpm_rc_str(*rc, rcs, sizeof(rcs)),
		    (*rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER
		        ? " (TPM cleared, or not the TPM it was sealed on?)"
		        : "");
		obj = ESYS_TR_NONE;
		return -1;
	}
	if (start_session(t, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, plain, &sess,
	                  rc, err, errlen) < 0) {
		goto out;
	}
	/* empty pcrDigest: the TPM takes the PCRs' values now */
	pcr_selection(b->branch[0].mask, &sel);
	TPM_RETRY(*rc, Esys_PolicyPCR(t->ectx, sess, ESYS_TR_NONE, ESYS_TR_NONE,
	                              ESYS_TR_NONE, &empty, &sel));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyPCR: %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	if (b->nbranches > 1) {
		/* the current values must be one of the branches */
		TPML_DIGEST list = {.count = (UINT32) b->nbranches};

		for (int k = 0; k < b->nbranches; k++) {
			list.digests[k] = b->branch[k].digest;
		}
		TPM_RETRY(*rc,
		          Esys_PolicyOR(t->ectx, sess, ESYS_TR_NONE,
		                        ESYS_TR_NONE, ESYS_TR_NONE, &list));
		if (*rc != TSS2_RC_SUCCESS) {
			snprintf(err, errlen, "PolicyOR over %d branches: %s",
			         b->nbranches,
			         tpm_rc_str(*rc, rcs, sizeof(rcs)));
			if ((*rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
				ret = -2; /* the PCRs match no branch */
			}
			goto out;
		}
	}
	TPM_RETRY(*rc, Esys_Unseal(t->ectx, obj, sess, ESYS_TR_NONE,
	                           ESYS_TR_NONE, &out));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "Unseal: %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		if (tpm_rc_is_policy(*rc)) {
			ret = -2;
		}
		goto out;
	}
	if (out->size != SEAL_MASTER_LEN) {
		snprintf(err, errlen, "Unseal: %u bytes, expected %d",
		         (unsigned) out->size, SEAL_MASTER_LEN);
		*rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
		goto out;
	}
	memcpy(master, out->buffer, SEAL_MASTER_LEN);
	ret = 0;
out:
	if (out != NULL) {
		explicit_bzero(out, sizeof(*out));
		Esys_Free(out);
	}
	tpm_flush(t, &sess);
	tpm_flush(t, &obj);
	if (ret == 0 && !plain) {
		scrub_esys_buffer(t);
		burn_stack();
	}
	return ret;
}

int
seal_unseal(struct tpm *t, const struct seal_blob *b, uint8_t *master,
            TSS2_RC *rc, char *err, size_t errlen)
{
	return unseal(t, b, master, false, rc, err, errlen);
}

int
seal_unseal_plain(struct tpm *t, const struct seal_blob *b, uint8_t *master,
                  TSS2_RC *rc, char *err, size_t errlen)
{
	return unseal(t, b, master, true, rc, err, errlen);
}

int
seal_changed_pcrs(struct tpm *t, const struct seal_blob *b, uint32_t *changed,
                  TSS2_RC *rc, char *err, size_t errlen)
{
	uint8_t now[SEAL_PCR_MAX][32];

	*changed = 0;
	if (seal_pcr_read(t, b->mask, now, rc, err, errlen) < 0) {
		return -1;
	}
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		if (!(b->mask & (1u << i))) {
			continue;
		}
		/* changed = matches no branch */
		bool same = false;
		for (int k = 0; k < b->nbranches; k++) {
			if ((b->branch[k].mask & (1u << i)) &&
			    memcmp(now[i], b->branch[k].values[i], 32) == 0) {
				same = true;
			}
		}
		if (!same) {
			*changed |= 1u << i;
		}
	}
	return 0;
}

/* ---- file ---- */

/* tek_unhex with the length in an out-parameter, as the parser wants it */
static int
unhex(const char *s, uint8_t *dst, size_t max, size_t *n)
{
	int len = tek_unhex(s, dst, max);

	if (len < 0) {
		return -1;
	}
	*n = (size_t) len;
	return 0;
}

static int
add_hex(cJSON *o, const char *name, const uint8_t *p, size_t n)
{
	char *h = malloc(2 * n + 1);
	int   rc;

	if (h == NULL) {
		return -1;
	}
	tek_hex(p, n, h, 2 * n + 1);
	rc = cJSON_AddStringToObject(o, name, h) ? 0 : -1;
	free(h);
	return rc;
}

int
seal_blob_store(const char *path, const struct seal_blob *b)
{
	uint8_t buf[SEAL_BLOB_MAX];
	size_t  off;
	char    pcrs[PCRS_LEN], *txt = NULL;
	cJSON  *o = cJSON_CreateObject(), *arr;
	int     rc = -1;

	pcrset_format(b->mask, pcrs, sizeof(pcrs));
	if (o == NULL || !cJSON_AddNumberToObject(o, "version", 1) ||
	    !cJSON_AddStringToObject(o, "srk", "0x81000001") ||
	    !cJSON_AddStringToObject(o, "bank", "sha256") ||
	    !cJSON_AddStringToObject(o, "pcrs", pcrs) ||
	    (arr = cJSON_AddArrayToObject(o, "branches")) == NULL) {
		goto out;
	}
	for (int k = 0; k < b->nbranches; k++) {
		const struct seal_branch *br = &b->branch[k];
		cJSON                    *bo = cJSON_CreateObject(), *vals;

		if (bo == NULL) {
			goto out;
		}
		cJSON_AddItemToArray(arr, bo);
		pcrset_format(br->mask, pcrs, sizeof(pcrs));
		if (!cJSON_AddStringToObject(bo, "pcrs", pcrs) ||
		    (vals = cJSON_AddObjectToObject(bo, "values")) == NULL ||
		    add_hex(bo, "digest", br->digest.buffer, br->digest.size) <
		        0) {
			goto out;
		}
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			char idx[4];
			if (!(br->mask & (1u << i))) {
				continue;
			}
			snprintf(idx, sizeof(idx), "%d", i);
			if (add_hex(vals, idx, br->values[i], 32) < 0) {
				goto out;
			}
		}
	}
	if (add_hex(o, "auth_policy", b->auth_policy.buffer,
	            b->auth_policy.size) < 0) {
		goto out;
	}
	off = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&b->pub, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    add_hex(o, "public", buf, off) < 0) {
		goto out;
	}
	off = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Marshal(&b->priv, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    add_hex(o, "private", buf, off) < 0) {
		goto out;
	}
	if ((txt = cJSON_Print(o)) == NULL) {
		goto out;
	}
	rc = durable_write(path, txt, strlen(txt), 0600);
	if (rc < 0) {
		log_warn("durable_write %s", path);
	}
out:
	free(txt);
	cJSON_Delete(o);
	return rc;
}

static const char *
jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
seal_blob_load(const char *path, struct seal_blob *b, char *err, size_t errlen)
{
	char        *txt = NULL;
	size_t       len, n, off;
	cJSON       *o = NULL;
	const cJSON *arr, *br;
	const char  *s;
	uint8_t      buf[SEAL_BLOB_MAX];
	char         perr[REASON_LEN];
	int          rc = -1;

	memset(b, 0, sizeof(*b));
	if (read_file(path, SEAL_FILE_MAX, &txt, &len) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((o = cJSON_ParseWithLength(txt, len)) == NULL) {
		snprintf(err, errlen, "%s: not JSON", path);
		goto out;
	}
	if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "version")) ||
	    cJSON_GetObjectItemCaseSensitive(o, "version")->valuedouble != 1) {
		snprintf(err, errlen, "%s: unsupported version", path);
		goto out;
	}
	if ((s = jstr(o, "bank")) == NULL || strcmp(s, "sha256") != 0) {
		snprintf(err, errlen, "%s: bank is not sha256", path);
		goto out;
	}
	if ((s = jstr(o, "pcrs")) == NULL ||
	    pcrset_parse(s, &b->mask, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s: pcrs: %s", path,
		         s ? perr : "missing");
		goto out;
	}
	arr = cJSON_GetObjectItemCaseSensitive(o, "branches");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
	    cJSON_GetArraySize(arr) > SEAL_BRANCHES_MAX) {
		snprintf(err, errlen, "%s: branches: expected 1 or %d", path,
		         SEAL_BRANCHES_MAX);
		goto out;
	}
	cJSON_ArrayForEach(br, arr)
	{
		struct seal_branch *sb = &b->branch[b->nbranches];
		const cJSON        *vals =
		    cJSON_GetObjectItemCaseSensitive(br, "values");

		if ((s = jstr(br, "pcrs")) == NULL ||
		    pcrset_parse(s, &sb->mask, perr, sizeof(perr)) < 0 ||
		    !cJSON_IsObject(vals) || (s = jstr(br, "digest")) == NULL ||
		    unhex(s, sb->digest.buffer, sizeof(sb->digest.buffer), &n) <
		        0) {
			snprintf(err, errlen, "%s: branch %d is malformed",
			         path, b->nbranches);
			goto out;
		}
		sb->digest.size = (UINT16) n;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			char idx[4];
			if (!(sb->mask & (1u << i))) {
				continue;
			}
			snprintf(idx, sizeof(idx), "%d", i);
			if ((s = jstr(vals, idx)) == NULL ||
			    unhex(s, sb->values[i], 32, &n) < 0 || n != 32) {
				snprintf(
				    err, errlen,
				    "%s: branch %d: value of PCR %d missing",
				    path, b->nbranches, i);
				goto out;
			}
		}
		b->nbranches++;
	}
	if ((s = jstr(o, "auth_policy")) == NULL ||
	    unhex(s, b->auth_policy.buffer, sizeof(b->auth_policy.buffer), &n) <
	        0) {
		snprintf(err, errlen, "%s: auth_policy is malformed", path);
		goto out;
	}
	b->auth_policy.size = (UINT16) n;
	off = 0;
	if ((s = jstr(o, "public")) == NULL ||
	    unhex(s, buf, sizeof(buf), &n) < 0 ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, n, &off, &b->pub) !=
	        TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "%s: public is malformed", path);
		goto out;
	}
	off = 0;
	if ((s = jstr(o, "private")) == NULL ||
	    unhex(s, buf, sizeof(buf), &n) < 0 ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, n, &off, &b->priv) !=
	        TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "%s: private is malformed", path);
		goto out;
	}
	if (b->pub.publicArea.authPolicy.size != b->auth_policy.size ||
	    memcmp(b->pub.publicArea.authPolicy.buffer, b->auth_policy.buffer,
	           b->auth_policy.size) != 0) {
		snprintf(err, errlen,
		         "%s: auth_policy does not match the sealed object's",
		         path);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	free(txt);
	return rc;
}
