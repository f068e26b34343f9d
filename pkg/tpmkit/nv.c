/*
 * nv.c: the EK-certificate NV index: define, write, lock, read.
 */
#include "tpm_ek.h"

#include <string.h>

#include <tss2/tss2_rc.h>

#define NV_ATTRS                                                               \
	(TPMA_NV_PLATFORMCREATE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD |       \
	 TPMA_NV_PPREAD | TPMA_NV_PPWRITE | TPMA_NV_NO_DA |                    \
	 TPMA_NV_WRITEDEFINE)
#define NV_CHUNK 768 /* below every TPM's MAX_NV_BUFFER_SIZE */

int
tek_nv_write_cert(ESYS_CONTEXT *e, uint32_t index, const uint8_t *der,
                  size_t len, char *err, size_t errlen)
{
	TPM2B_AUTH      auth = {0};
	TPM2B_NV_PUBLIC info = {0};
	ESYS_TR         nv = ESYS_TR_NONE;
	TSS2_RC         rc;
	size_t          off;

	if (len == 0 || len > TEK_CERT_MAX) {
		snprintf(err, errlen, "certificate of %zu bytes", len);
		return -1;
	}
	/* an index left from an earlier life of this state: replace it */
	if (Esys_TR_FromTPMPublic(e, index, ESYS_TR_NONE, ESYS_TR_NONE,
	                          ESYS_TR_NONE, &nv) == TSS2_RC_SUCCESS) {
		rc = Esys_NV_UndefineSpace(e, ESYS_TR_RH_PLATFORM, nv,
		                           ESYS_TR_PASSWORD, ESYS_TR_NONE,
		                           ESYS_TR_NONE);
		if (rc != TSS2_RC_SUCCESS) {
			(void) Esys_TR_Close(e, &nv);
			return tek_fail(err, errlen, "NV_UndefineSpace", rc);
		}
		nv = ESYS_TR_NONE;
	}
	info.nvPublic.nvIndex = index;
	info.nvPublic.nameAlg = TPM2_ALG_SHA256;
	info.nvPublic.attributes = NV_ATTRS;
	info.nvPublic.dataSize = (UINT16) len;
	rc = Esys_NV_DefineSpace(e, ESYS_TR_RH_PLATFORM, ESYS_TR_PASSWORD,
	                         ESYS_TR_NONE, ESYS_TR_NONE, &auth, &info, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		return tek_fail(err, errlen, "NV_DefineSpace (platform)", rc);
	}
	for (off = 0; off < len; off += NV_CHUNK) {
		TPM2B_MAX_NV_BUFFER d;
		size_t n = len - off < NV_CHUNK ? len - off : NV_CHUNK;

		d.size = (UINT16) n;
		memcpy(d.buffer, der + off, n);
		rc =
		    Esys_NV_Write(e, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD,
		                  ESYS_TR_NONE, ESYS_TR_NONE, &d, (UINT16) off);
		if (rc != TSS2_RC_SUCCESS) {
			(void) Esys_TR_Close(e, &nv);
			return tek_fail(err, errlen, "NV_Write", rc);
		}
	}
	rc = Esys_NV_WriteLock(e, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE);
	(void) Esys_TR_Close(e, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		return tek_fail(err, errlen, "NV_WriteLock", rc);
	}
	return 0;
}

int
tek_nv_read(ESYS_CONTEXT *e, uint32_t index, uint8_t *buf, size_t max,
            char *err, size_t errlen)
{
	TPM2B_NV_PUBLIC *info = NULL;
	ESYS_TR          nv = ESYS_TR_NONE;
	TSS2_RC          rc;
	size_t           len, off;

	rc = Esys_TR_FromTPMPublic(e, index, ESYS_TR_NONE, ESYS_TR_NONE,
	                           ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		return 0; /* no such index */
	}
	rc = Esys_NV_ReadPublic(e, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                        &info, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		(void) Esys_TR_Close(e, &nv);
		return tek_fail(err, errlen, "NV_ReadPublic", rc);
	}
	len = info->nvPublic.dataSize;
	Esys_Free(info);
	if (len > max) {
		(void) Esys_TR_Close(e, &nv);
		snprintf(err, errlen, "NV index 0x%x holds %zu bytes (max %zu)",
		         index, len, max);
		return -1;
	}
	for (off = 0; off < len; off += NV_CHUNK) {
		TPM2B_MAX_NV_BUFFER *d = NULL;
		size_t n = len - off < NV_CHUNK ? len - off : NV_CHUNK;

		rc = Esys_NV_Read(e, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD,
		                  ESYS_TR_NONE, ESYS_TR_NONE, (UINT16) n,
		                  (UINT16) off, &d);
		if (rc != TSS2_RC_SUCCESS || d->size != n) {
			Esys_Free(d);
			(void) Esys_TR_Close(e, &nv);
			return tek_fail(err, errlen, "NV_Read", rc);
		}
		memcpy(buf + off, d->buffer, n);
		Esys_Free(d);
	}
	(void) Esys_TR_Close(e, &nv);
	return (int) len;
}
