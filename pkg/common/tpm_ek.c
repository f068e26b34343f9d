/*
 * tpm_ek.c: the EK template, a TCTI over a raw TPM command fd, EK
 * provisioning, the EK-certificate NV index and public-area conversions
 * (see tpm_ek.h).
 */
#include "tpm_ek.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tcti.h>

/* PolicySecret(TPM_RH_ENDORSEMENT), the EK's authPolicy (TCG EK profile) */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

#define EK_ATTRS                                                               \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |                      \
	 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |       \
	 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

const char *
tek_rc_str(TSS2_RC rc, char *buf, size_t len)
{
	snprintf(buf, len, "0x%x (%s)", rc, Tss2_RC_Decode(rc));
	return buf;
}

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

/* ---- a TCTI over a raw command fd ---- */

#define TCTI_MAGIC 0x7674706d66647463ULL /* "vtpmfdtc" */
#define TCTI_BUF   4096

struct fd_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common; /* first: cast target */
	int                         fd;
	int                         timeout_ms;
	size_t                      rsplen; /* response waiting, 0 = none */
	uint8_t                     rsp[TCTI_BUF];
};

static TSS2_RC
fd_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd)
{
	struct fd_tcti *t = (struct fd_tcti *) ctx;
	int             n;

	n = swtpm_tpm_transmit(t->fd, cmd, size, t->rsp, sizeof(t->rsp),
	                       t->timeout_ms);
	if (n < 10) {
		t->rsplen = 0;
		return TSS2_TCTI_RC_IO_ERROR;
	}
	t->rsplen = (size_t) n;
	return TSS2_RC_SUCCESS;
}

static TSS2_RC
fd_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t tmo)
{
	struct fd_tcti *t = (struct fd_tcti *) ctx;

	(void) tmo;
	if (t->rsplen == 0) {
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	}
	if (rsp == NULL) {
		*size = t->rsplen; /* size query */
		return TSS2_RC_SUCCESS;
	}
	if (*size < t->rsplen) {
		*size = t->rsplen;
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	}
	memcpy(rsp, t->rsp, t->rsplen);
	*size = t->rsplen;
	t->rsplen = 0;
	return TSS2_RC_SUCCESS;
}

static void
fd_finalize(TSS2_TCTI_CONTEXT *ctx)
{
	(void) ctx;
}

static TSS2_RC
fd_cancel(TSS2_TCTI_CONTEXT *ctx)
{
	(void) ctx;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_poll(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
	(void) ctx;
	(void) h;
	(void) n;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t loc)
{
	(void) ctx;
	(void) loc;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_sticky(TSS2_TCTI_CONTEXT *ctx, TPM2_HANDLE *h, uint8_t sticky)
{
	(void) ctx;
	(void) h;
	(void) sticky;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

TSS2_TCTI_CONTEXT *
tek_tcti_new(int fd, int timeout_ms)
{
	struct fd_tcti *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	t->common.v1.magic = TCTI_MAGIC;
	t->common.v1.version = 2;
	t->common.v1.transmit = fd_transmit;
	t->common.v1.receive = fd_receive;
	t->common.v1.finalize = fd_finalize;
	t->common.v1.cancel = fd_cancel;
	t->common.v1.getPollHandles = fd_poll;
	t->common.v1.setLocality = fd_locality;
	t->common.makeSticky = fd_sticky;
	t->fd = fd;
	t->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	return (TSS2_TCTI_CONTEXT *) t;
}

void
tek_tcti_free(TSS2_TCTI_CONTEXT *t)
{
	free(t);
}

/* ---- commands ---- */

static int
tpm_fail(char *err, size_t errlen, const char *what, TSS2_RC rc)
{
	char b[128];

	snprintf(err, errlen, "%s: %s", what, tek_rc_str(rc, b, sizeof(b)));
	return -1;
}

int
tek_startup(ESYS_CONTEXT *e, char *err, size_t errlen)
{
	TSS2_RC rc = Esys_Startup(e, TPM2_SU_CLEAR);

	if (rc != TSS2_RC_SUCCESS && (rc & 0xfff) != TPM2_RC_INITIALIZE) {
		return tpm_fail(err, errlen, "TPM2_Startup", rc);
	}
	return 0;
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
		return tpm_fail(err, errlen, what, rc);
	}
	rc = Esys_ReadPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                     pub, NULL, NULL);
	(void) Esys_TR_Close(e, &h);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "ReadPublic 0x%x", handle);
		return tpm_fail(err, errlen, what, rc);
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
			return tpm_fail(err, errlen, "EvictControl (old EK)",
			                rc);
		}
	}
	rc = Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
	                        ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tpl,
	                        &outside, &pcrs, &obj, pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "CreatePrimary (%s EK)", name);
		return tpm_fail(err, errlen, what, rc);
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
		return tpm_fail(err, errlen, what, rc);
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
			return tpm_fail(err, errlen, "NV_UndefineSpace", rc);
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
		return tpm_fail(err, errlen, "NV_DefineSpace (platform)", rc);
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
			return tpm_fail(err, errlen, "NV_Write", rc);
		}
	}
	rc = Esys_NV_WriteLock(e, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE);
	(void) Esys_TR_Close(e, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		return tpm_fail(err, errlen, "NV_WriteLock", rc);
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
		return tpm_fail(err, errlen, "NV_ReadPublic", rc);
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
			return tpm_fail(err, errlen, "NV_Read", rc);
		}
		memcpy(buf + off, d->buffer, n);
		Esys_Free(d);
	}
	(void) Esys_TR_Close(e, &nv);
	return (int) len;
}

/* ---- conversions ---- */

void
tek_hex(const uint8_t *b, size_t n, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t            i;

	for (i = 0; i < n && 2 * i + 2 < outlen; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	if (outlen > 0) {
		out[2 * i < outlen ? 2 * i : outlen - 1] = '\0';
	}
}

static int
nib(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int
tek_unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t len = strlen(hex), i;

	if (len % 2 != 0 || len / 2 > max) {
		return -1;
	}
	for (i = 0; i < len / 2; i++) {
		int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -1;
		}
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	return (int) (len / 2);
}

int
tek_pub_to_hex(const TPM2B_PUBLIC *pub, char *hex, size_t hexlen)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t  off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    2 * off + 1 > hexlen) {
		return -1;
	}
	tek_hex(buf, off, hex, hexlen);
	return 0;
}

int
tek_pub_from_hex(const char *hex, TPM2B_PUBLIC *pub)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t  off = 0;
	int     n = tek_unhex(hex, buf, sizeof(buf));

	memset(pub, 0, sizeof(*pub));
	if (n <= 0 ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, (size_t) n, &off, pub) !=
	        TSS2_RC_SUCCESS ||
	    off != (size_t) n) {
		return -1;
	}
	return 0;
}

int
tek_pub_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *name)
{
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	size_t  off = 0;

	if (pub->publicArea.nameAlg != TPM2_ALG_SHA256 ||
	    Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf),
	                                &off) != TSS2_RC_SUCCESS) {
		return -1;
	}
	name->size = 2 + SHA256_DIGEST_LENGTH;
	name->name[0] = TPM2_ALG_SHA256 >> 8;
	name->name[1] = TPM2_ALG_SHA256 & 0xff;
	SHA256(buf, off, name->name + 2);
	return 0;
}

/* An OpenSSL key for an ECC P-256 public area. */
static EVP_PKEY *
ecc_pkey(const TPMT_PUBLIC *p)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM     *params = NULL;
	EVP_PKEY_CTX   *ctx = NULL;
	EVP_PKEY       *pkey = NULL;
	uint8_t         pt[1 + 2 * 32];

	if (p->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
	    p->unique.ecc.x.size != 32 || p->unique.ecc.y.size != 32) {
		return NULL;
	}
	pt[0] = 0x04; /* uncompressed point */
	memcpy(pt + 1, p->unique.ecc.x.buffer, 32);
	memcpy(pt + 33, p->unique.ecc.y.buffer, 32);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	                                     "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
	                                      sizeof(pt)) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

EVP_PKEY *
tek_pub_to_pkey(const TPM2B_PUBLIC *pub)
{
	const TPMT_PUBLIC *p = &pub->publicArea;
	OSSL_PARAM_BLD    *bld = NULL;
	OSSL_PARAM        *params = NULL;
	EVP_PKEY_CTX      *ctx = NULL;
	EVP_PKEY          *pkey = NULL;
	BIGNUM            *n = NULL, *e = NULL;
	uint32_t           exp = p->parameters.rsaDetail.exponent
	                             ? p->parameters.rsaDetail.exponent
	                             : 65537;

	if (p->type == TPM2_ALG_ECC) {
		return ecc_pkey(p);
	}
	if (p->type != TPM2_ALG_RSA || p->unique.rsa.size == 0) {
		return NULL;
	}
	n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
	e = BN_new();
	if (n == NULL || e == NULL || !BN_set_word(e, exp) ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

void
tek_ak_cn(const char *device_id, char *cn, size_t len)
{
	/* skip the 4 hex digits of the nameAlg */
	const char *d = strlen(device_id) > 4 ? device_id + 4 : device_id;

	snprintf(cn, len, "vtpm-ak-%.32s", d);
}

int
tek_vtpm_open(struct tek_vtpm *v, const char *ctrl, int timeout_ms, char *err,
              size_t errlen)
{
	uint32_t result = 0;
	TSS2_RC  rc;
	int      cfd;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	snprintf(v->ctrl, sizeof(v->ctrl), "%s", ctrl);
	if ((cfd = swtpm_ctrl_connect(ctrl, timeout_ms)) < 0) {
		snprintf(err, errlen, "connect %s: %s", ctrl, strerror(errno));
		return -1;
	}
	if (swtpm_ctrl_set_datafd(cfd, &v->fd, &result) < 0 || result != 0) {
		snprintf(err, errlen, "CMD_SET_DATAFD on %s: %s", ctrl,
		         result ? "TPM error" : strerror(errno));
		close(cfd);
		if (v->fd >= 0) {
			close(v->fd);
		}
		v->fd = -1;
		return -1;
	}
	close(cfd); /* swtpm serves one control client at a time */
	if ((v->tcti = tek_tcti_new(v->fd, timeout_ms)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = Esys_Initialize(&v->ectx, v->tcti, NULL)) !=
	    TSS2_RC_SUCCESS) {
		tpm_fail(err, errlen, "Esys_Initialize", rc);
		goto fail;
	}
	rc = Esys_Startup(v->ectx, TPM2_SU_CLEAR);
	if (rc == TSS2_RC_SUCCESS) {
		v->started = true;
	} else if ((rc & 0xfff) != TPM2_RC_INITIALIZE) {
		tpm_fail(err, errlen, "TPM2_Startup", rc);
		goto fail;
	}
	return 0;
fail:
	(void) tek_vtpm_close(v, NULL, 0);
	return -1;
}

int
tek_vtpm_close(struct tek_vtpm *v, char *err, size_t errlen)
{
	uint32_t result = 0;
	int      cfd, ret = 0;

	if (v->ectx != NULL && v->started) {
		(void) Esys_Shutdown(v->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
		                     ESYS_TR_NONE, TPM2_SU_CLEAR);
	}
	if (v->ectx != NULL) {
		Esys_Finalize(&v->ectx);
	}
	tek_tcti_free(v->tcti);
	v->tcti = NULL;
	if (v->fd >= 0) {
		close(v->fd);
		v->fd = -1;
	}
	if (v->started) {
		v->started = false;
		cfd = swtpm_ctrl_connect(v->ctrl, 5000);
		if (cfd < 0 || swtpm_ctrl_init(cfd, 0, &result) < 0 ||
		    result != 0) {
			if (err != NULL) {
				snprintf(
				    err, errlen, "CMD_INIT on %s: %s", v->ctrl,
				    result ? "TPM error" : strerror(errno));
			}
			ret = -1;
		}
		if (cfd >= 0) {
			close(cfd);
		}
	}
	return ret;
}

int
tek_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX      ctx;
	X509_EXTENSION *ex;
	int             ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ex == NULL) {
		return -1;
	}
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok ? 0 : -1;
}

int
tek_der_to_pem(const uint8_t *der, size_t len, char *pem, size_t pemlen)
{
	const unsigned char *p = der;
	X509                *x = d2i_X509(NULL, &p, (long) len);
	BIO                 *bio = BIO_new(BIO_s_mem());
	char                *data;
	long                 n;
	int                  ret = -1;

	if (x != NULL && bio != NULL && PEM_write_bio_X509(bio, x)) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0 && (size_t) n < pemlen) {
			memcpy(pem, data, (size_t) n);
			pem[n] = '\0';
			ret = 0;
		}
	}
	BIO_free(bio);
	X509_free(x);
	return ret;
}
