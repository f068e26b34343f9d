/* srk.c: the storage root key at --srk-handle: looked up and reused when
 * it is a storage key we can seal under (ours, or the OS's), or created
 * (the standard ECC P-256 template) and persisted; and the handle
 * options' parsing. */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <errno.h>
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

/* Why the key at the SRK handle is no storage parent we can seal under,
 * or NULL when it is one. Our own template passes, and so does an OS's
 * SRK of another shape (EVE's is RSA-2048, AES-128-CFB, restricted
 * decrypt, userWithAuth with an empty auth value): Create and Load under
 * a parent need exactly a restricted decryption key with a symmetric
 * (CFB) scheme, and our salted sessions need an RSA or ECC key. */
static const char *
srk_unusable(const TPMT_PUBLIC *p)
{
	static const TPMA_OBJECT need =
	    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
	    TPMA_OBJECT_DECRYPT;
	const TPMT_SYM_DEF_OBJECT *sym;

	if (p->type != TPM2_ALG_KEYEDHASH &&
	    (p->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) != 0) {
		return "a signing key";
	}
	if (p->type == TPM2_ALG_RSA) {
		const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;

		if (r->keyBits < 2048) {
			return "an RSA key shorter than 2048 bits";
		}
		if (r->scheme.scheme != TPM2_ALG_NULL) {
			return "an RSA key with a scheme (not a storage key)";
		}
		sym = &r->symmetric;
	} else if (p->type == TPM2_ALG_ECC) {
		const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;

		if (e->curveID != TPM2_ECC_NIST_P256 &&
		    e->curveID != TPM2_ECC_NIST_P384) {
			return "an ECC key on a curve other than P-256/P-384";
		}
		if (e->scheme.scheme != TPM2_ALG_NULL ||
		    e->kdf.scheme != TPM2_ALG_NULL) {
			return "an ECC key with a scheme or kdf (not a storage "
			       "key)";
		}
		sym = &e->symmetric;
	} else {
		return p->type == TPM2_ALG_KEYEDHASH ? "a sealed data or HMAC "
		                                       "object, not a key"
		                                     : "not an RSA or ECC key";
	}
	if ((p->objectAttributes & need) != need) {
		return "not a restricted fixedTPM/fixedParent decryption key "
		       "usable with its auth value";
	}
	if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB) {
		return "its symmetric scheme is not AES-CFB";
	}
	if (p->nameAlg != TPM2_ALG_SHA256 && p->nameAlg != TPM2_ALG_SHA384) {
		return "its name algorithm is not sha256/sha384";
	}
	return NULL;
}

int
tpm_handle_parse(const char *s, uint32_t *h, char *err, size_t errlen)
{
	char         *end;
	unsigned long v;

	errno = 0;
	v = s != NULL && *s != '\0' ? strtoul(s, &end, 0) : 0;
	if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 ||
	    v < 0x81000000ul || v > 0x81fffffful) {
		strfmt(err, errlen,
		       "\"%.32s\" is not a persistent handle "
		       "(0x81000000-0x81FFFFFF)",
		       s != NULL ? s : "");
		return -1;
	}
	*h = (uint32_t) v;
	return 0;
}

int
tpm_handles_check(const struct tpm_handles *h, char *err, size_t errlen)
{
	if (h->srk == h->ek || h->srk == h->ak || h->ek == h->ak) {
		strfmt(err, errlen,
		       "SRK 0x%x, EK 0x%x and AK 0x%x must be three "
		       "different handles",
		       h->srk, h->ek, h->ak);
		return -1;
	}
	return 0;
}

static bool
rc_is_handle(TSS2_RC rc)
{
	TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;

	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER &&
	       (base & TPM2_RC_FMT1) &&
	       (base & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_HANDLE;
}

/* The key found at t->h.srk (h) must be the standard SRK. */
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
		snprintf(err, errlen, "SRK 0x%x: ReadPublic: %s", t->h.srk,
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	if ((why = srk_unusable(&pub->publicArea)) != NULL) {
		snprintf(err, errlen,
		         "persistent handle 0x%x (--srk-handle) holds %s, not "
		         "a storage key to seal under: refusing to use or "
		         "replace it",
		         t->h.srk, why);
		goto out;
	}
	log_info("SRK: reusing the %s storage key at 0x%x",
	         pub->publicArea.type == TPM2_ALG_RSA ? "RSA" : "ECC",
	         t->h.srk);
	ret = 0;
out:
	Esys_Free(pub);
	Esys_Free(name);
	Esys_Free(qname);
	return ret;
}

/* No SRK yet: create it in the owner hierarchy and make it persistent at
 * t->h.srk (*h). */
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
	                                 ESYS_TR_NONE, t->h.srk, h));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "SRK: EvictControl to 0x%x: %s", t->h.srk,
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		goto out;
	}
	log_info("created the SRK (ECC P-256) at persistent handle 0x%x",
	         t->h.srk);
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
	TPM_RETRY(*rc, Esys_TR_FromTPMPublic(t->ectx, t->h.srk, ESYS_TR_NONE,
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
		snprintf(err, errlen, "SRK 0x%x: lookup: %s", t->h.srk,
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
