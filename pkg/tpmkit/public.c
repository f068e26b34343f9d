/*
 * public.c: TPM public areas as hex, as TPM names and as OpenSSL keys.
 */
#include "tpm_ek.h"
#include "common.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

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
	hex_encode(buf, off, hex, hexlen);
	return 0;
}

int
tek_pub_from_hex(const char *hex, TPM2B_PUBLIC *pub)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t  off = 0;
	int     n = hex_decode_str(hex, buf, sizeof(buf));

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

/* A public key of type ("RSA", "EC") from the parameters in bld; NULL on
 * error. bld stays the caller's. */
static EVP_PKEY *
pkey_from_params(OSSL_PARAM_BLD *bld, const char *type)
{
	OSSL_PARAM   *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY     *pkey = NULL;

	if (params == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An OpenSSL key for an ECC P-256 public area. */
static EVP_PKEY *
ecc_pkey(const TPMT_PUBLIC *p)
{
	OSSL_PARAM_BLD *bld;
	EVP_PKEY       *pkey = NULL;
	uint8_t         pt[1 + 2 * 32];

	if (p->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
	    p->unique.ecc.x.size != 32 || p->unique.ecc.y.size != 32) {
		return NULL;
	}
	pt[0] = 0x04; /* uncompressed point */
	memcpy(pt + 1, p->unique.ecc.x.buffer, 32);
	memcpy(pt + 33, p->unique.ecc.y.buffer, 32);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL) {
		return NULL;
	}
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	                                    "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
	                                     sizeof(pt))) {
		pkey = pkey_from_params(bld, "EC");
	}
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

EVP_PKEY *
tek_pub_to_pkey(const TPM2B_PUBLIC *pub)
{
	const TPMT_PUBLIC *p = &pub->publicArea;
	OSSL_PARAM_BLD    *bld = NULL;
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
	if (n != NULL && e != NULL && BN_set_word(e, exp) &&
	    (bld = OSSL_PARAM_BLD_new()) != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
		pkey = pkey_from_params(bld, "RSA");
	}
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}
