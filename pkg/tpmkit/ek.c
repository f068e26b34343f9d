/*
 * ek.c: the TCG EK templates (L-1 RSA-2048, L-2 ECC P-256), EK creation
 * (persisted or flushed) and reading persistent public areas.
 */
#include "tpm_ek.h"

#include <stdio.h>
#include <string.h>

#include <tss2/tss2_rc.h>

/* PolicySecret(TPM_RH_ENDORSEMENT), the EK's authPolicy (TCG EK profile) */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

#define EK_ATTRS                                                               \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |                      \
	 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |       \
	 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

void
tek_ek_template_alg(TPM2B_PUBLIC *pub, TPM2_ALG_ID alg)
{
	TPMT_PUBLIC *p = &pub->publicArea;

	memset(pub, 0, sizeof(*pub));
	p->nameAlg = TPM2_ALG_SHA256;
	p->objectAttributes = EK_ATTRS;
	p->authPolicy.size = sizeof(ek_policy);
	memcpy(p->authPolicy.buffer, ek_policy, sizeof(ek_policy));
	if (alg == TPM2_ALG_ECC) {
		/* L-2: NIST P-256, unique = two 32-byte zero coordinates */
		p->type = TPM2_ALG_ECC;
		p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
		p->parameters.eccDetail.symmetric.keyBits.aes = 128;
		p->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		p->unique.ecc.x.size = 32;
		p->unique.ecc.y.size = 32;
		return;
	}
	p->type = TPM2_ALG_RSA;
	p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
	p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
	p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
	p->parameters.rsaDetail.keyBits = 2048;
	p->parameters.rsaDetail.exponent = 0;
	p->unique.rsa.size = 256; /* 256 zero bytes */
}

void
tek_ek_template(TPM2B_PUBLIC *pub)
{
	tek_ek_template_alg(pub, TPM2_ALG_RSA);
}

TPM2_ALG_ID
tek_ek_alg(const TPM2B_PUBLIC *pub)
{
	const TPMT_PUBLIC *p = &pub->publicArea;

	if (p->nameAlg != TPM2_ALG_SHA256 || p->objectAttributes != EK_ATTRS ||
	    p->authPolicy.size != sizeof(ek_policy) ||
	    memcmp(p->authPolicy.buffer, ek_policy, sizeof(ek_policy)) != 0) {
		return TPM2_ALG_NULL;
	}
	if (p->type == TPM2_ALG_RSA &&
	    p->parameters.rsaDetail.symmetric.algorithm == TPM2_ALG_AES &&
	    p->parameters.rsaDetail.symmetric.keyBits.aes == 128 &&
	    p->parameters.rsaDetail.keyBits == 2048 &&
	    p->unique.rsa.size == 256) {
		return TPM2_ALG_RSA;
	}
	if (p->type == TPM2_ALG_ECC &&
	    p->parameters.eccDetail.symmetric.algorithm == TPM2_ALG_AES &&
	    p->parameters.eccDetail.symmetric.keyBits.aes == 128 &&
	    p->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 &&
	    p->unique.ecc.x.size == 32 && p->unique.ecc.y.size == 32) {
		return TPM2_ALG_ECC;
	}
	return TPM2_ALG_NULL;
}

bool
tek_is_ek_template(const TPM2B_PUBLIC *pub)
{
	return tek_ek_alg(pub) == TPM2_ALG_RSA;
}

int
tek_read_public(ESYS_CONTEXT *e, uint32_t handle, TPM2B_PUBLIC **pub, char *err,
                size_t errlen)
{
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;
	char    what[64];

	*pub = NULL;
	rc = Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE,
	                           ESYS_TR_NONE, &h);
	if ((rc & 0xfff) == TPM2_RC_HANDLE || (rc & 0xbf) == TPM2_RC_HANDLE) {
		return 1;
	}
	snprintf(what, sizeof(what), "TR_FromTPMPublic 0x%x", handle);
	if (rc != TSS2_RC_SUCCESS) {
		return tek_fail(err, errlen, what, rc);
	}
	rc = Esys_ReadPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                     pub, NULL, NULL);
	(void) Esys_TR_Close(e, &h);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "ReadPublic 0x%x", handle);
		return tek_fail(err, errlen, what, rc);
	}
	return 0;
}

int
tek_ek_create(ESYS_CONTEXT *e, TPM2_ALG_ID alg, uint32_t handle,
              TPM2B_PUBLIC **pub, char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC           tpl;
	TPM2B_DATA             outside = {0};
	TPML_PCR_SELECTION     pcrs = {0};
	ESYS_TR                obj = ESYS_TR_NONE, old = ESYS_TR_NONE, out;
	TSS2_RC                rc;
	const char            *name = alg == TPM2_ALG_ECC ? "ECC" : "RSA";
	char                   what[64];

	*pub = NULL;
	tek_ek_template_alg(&tpl, alg);
	/* an object already at handle (a reset state): evict it first */
	if (handle != 0 &&
	    Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE,
	                          ESYS_TR_NONE, &old) == TSS2_RC_SUCCESS) {
		rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, old,
		                       ESYS_TR_PASSWORD, ESYS_TR_NONE,
		                       ESYS_TR_NONE, handle, &out);
		if (rc != TSS2_RC_SUCCESS) {
			(void) Esys_TR_Close(e, &old);
			return tek_fail(err, errlen, "EvictControl (old EK)",
			                rc);
		}
	}
	rc = Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
	                        ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tpl,
	                        &outside, &pcrs, &obj, pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "CreatePrimary (%s EK)", name);
		return tek_fail(err, errlen, what, rc);
	}
	if (handle == 0) {
		/* a transient EK: the same key comes back from the seed
		 * whenever someone (the guest) asks for it */
		(void) Esys_FlushContext(e, obj);
		return 0;
	}
	rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE, handle, &out);
	(void) Esys_FlushContext(e, obj);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_Free(*pub);
		*pub = NULL;
		snprintf(what, sizeof(what), "EvictControl (%s EK to 0x%x)",
		         name, handle);
		return tek_fail(err, errlen, what, rc);
	}
	(void) Esys_TR_Close(e, &out);
	return 0;
}

int
tek_ek_provision(ESYS_CONTEXT *e, uint32_t handle, TPM2B_PUBLIC **pub,
                 char *err, size_t errlen)
{
	return tek_ek_create(e, TPM2_ALG_RSA, handle, pub, err, errlen);
}
