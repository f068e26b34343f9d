/* srk.c: the storage root key at 0x81000001: looked up, checked against
 * the standard ECC P-256 template, or created and persisted. */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

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

/* The key found at SEAL_SRK_HANDLE (h) must be the standard SRK. */
static int
srk_check(struct tpm *t, ESYS_TR h, TSS2_RC *rc, char *err, size_t errlen)
{
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_NAME   *name = NULL, *qname = NULL;
	char          rcs[128];
	const char   *why;
	int           ret = -1;

	TPM_RETRY(*rc, Esys_ReadPublic(t->ectx, h, ESYS_TR_NONE, ESYS_TR_NONE,
	                               ESYS_TR_NONE, &pub, &name, &qname));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK 0x%x: ReadPublic: %s",
		         SEAL_SRK_HANDLE, tek_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	if ((why = srk_mismatch(&pub->publicArea)) != NULL) {
		snprintf(err, errlen,
		         "persistent handle 0x%x holds a key that is not "
		         "the standard ECC P-256 SRK (%s): refusing to use "
		         "or replace it",
		         SEAL_SRK_HANDLE, why);
		goto out;
	}
	ret = 0;
out:
	Esys_Free(pub);
	Esys_Free(name);
	Esys_Free(qname);
	return ret;
}

/* No SRK yet: create it in the owner hierarchy and make it persistent at
 * SEAL_SRK_HANDLE (*h). */
static int
srk_create(struct tpm *t, ESYS_TR *h, TSS2_RC *rc, char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE insens = {0};
	TPM2B_DATA             outside = {0};
	TPML_PCR_SELECTION     cpcr = {0};
	ESYS_TR                prim = ESYS_TR_NONE;
	TPM2B_PUBLIC          *opub = NULL;
	TPM2B_CREATION_DATA   *cdata = NULL;
	TPM2B_DIGEST          *chash = NULL;
	TPMT_TK_CREATION      *ticket = NULL;
	char                   rcs[128];
	int                    ret = -1;

	TPM_RETRY(*rc, Esys_CreatePrimary(t->ectx, ESYS_TR_RH_OWNER,
	                                  ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                                  ESYS_TR_NONE, &insens, &srk_template,
	                                  &outside, &cpcr, &prim, &opub, &cdata,
	                                  &chash, &ticket));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK: CreatePrimary (owner): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	TPM_RETRY(*rc, Esys_EvictControl(t->ectx, ESYS_TR_RH_OWNER, prim,
	                                 ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                                 ESYS_TR_NONE, SEAL_SRK_HANDLE, h));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK: EvictControl to 0x%x: %s",
		         SEAL_SRK_HANDLE, tek_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	log_info("created the SRK (ECC P-256) at persistent handle 0x%x",
	         SEAL_SRK_HANDLE);
	ret = 0;
out:
	tpm_flush(t, &prim); /* the transient copy; the persistent one stays */
	Esys_Free(opub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	return ret;
}

int
seal_srk(struct tpm *t, TSS2_RC *rc, char *err, size_t errlen)
{
	ESYS_TR h = ESYS_TR_NONE;
	char    rcs[128];

	*rc = TSS2_RC_SUCCESS;
	if (t->srk != ESYS_TR_NONE) {
		return 0;
	}
	TPM_RETRY(*rc,
	          Esys_TR_FromTPMPublic(t->ectx, SEAL_SRK_HANDLE, ESYS_TR_NONE,
	                                ESYS_TR_NONE, ESYS_TR_NONE, &h));
	if (*rc == TSS2_RC_SUCCESS) {
		if (srk_check(t, h, rc, err, errlen) < 0) {
			(void) Esys_TR_Close(t->ectx, &h);
			goto fail;
		}
		t->srk = h;
		return 0;
	}
	if (!rc_is_handle(*rc)) {
		snprintf(err, errlen, "SRK 0x%x: lookup: %s", SEAL_SRK_HANDLE,
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	h = ESYS_TR_NONE;
	if (srk_create(t, &h, rc, err, errlen) < 0) {
		goto fail;
	}
	t->srk = h;
	return 0;
fail:
	if (*rc == TSS2_RC_SUCCESS) {
		*rc = TSS2_ESYS_RC_BAD_VALUE;
	}
	return -1;
}
