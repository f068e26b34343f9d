/* kdf.c: per-VM keys, HKDF-SHA256(master, info "vtpm-state-v1" || uuid). */
#include "keyfmt.h"

#include <ctype.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

int
kdf_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
                size_t saltlen, const uint8_t *info, size_t infolen,
                uint8_t *out, size_t outlen)
{
	EVP_KDF     *kdf;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM   params[5], *p = params;
	int          rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL) {
		return -1;
	}
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL) {
		return -1;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	                                        (char *) "SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	                                         (void *) ikm, ikmlen);
	if (salt != NULL && saltlen > 0) {
		*p++ = OSSL_PARAM_construct_octet_string(
		    OSSL_KDF_PARAM_SALT, (void *) salt, saltlen);
	}
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	                                         (void *) info, infolen);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, outlen, params) == 1) {
		rc = 0;
	}
	/* the context holds a copy of the key: freeing it clears it */
	EVP_KDF_CTX_free(ctx);
	return rc;
}

int
kdf_vm_key(const uint8_t *master, size_t mlen, const char *uuid, uint8_t *out,
           size_t outlen)
{
	uint8_t info[sizeof(KDF_INFO_PREFIX) - 1 + UUID_LEN];
	size_t  plen = sizeof(KDF_INFO_PREFIX) - 1, ulen = strlen(uuid);
	int     rc;

	if (ulen != UUID_LEN - 1) {
		return -1;
	}
	memcpy(info, KDF_INFO_PREFIX, plen);
	/* lowercase: the same VM gets the same key however it is spelt */
	for (size_t i = 0; i < ulen; i++) {
		info[plen + i] = (uint8_t) tolower((unsigned char) uuid[i]);
	}
	rc = kdf_hkdf_sha256(master, mlen, NULL, 0, info, plen + ulen, out,
	                     outlen);
	if (rc < 0) {
		explicit_bzero(out, outlen);
	}
	return rc;
}
