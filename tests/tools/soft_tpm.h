/*
 * soft_tpm.h: the device side of attestation in software, for tests and
 * benchmarks of the verifier (which never needs a TPM itself): RSA keys
 * as TPM public areas (AK, EK template), TPM2_ActivateCredential (RSA-OAEP
 * seed, KDFa, HMAC, AES-CFB, TPM 2.0 part 1, 24) and the broker's vTPM EK
 * certificate signed by a software AK. Header-only (static inline functions):
 * included by tests/unit/verify_test.c and tests/tools/soft_device.c.
 */
#ifndef SOFT_TPM_H
#define SOFT_TPM_H

#include "sealer.h"
#include "tpm_ek.h"
#include "verify.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

/* The public area of RSA key k: the EK template L-1 (is_ek) or a
 * restricted RSASSA-SHA256 signing key (an AK). 0 or -1. */
static inline int
soft_pub(EVP_PKEY *k, bool is_ek, TPM2B_PUBLIC *pub)
{
	BIGNUM *n = NULL;
	int     ok;

	if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n)) {
		return -1;
	}
	if (is_ek) {
		tek_ek_template(pub);
	} else {
		TPMT_PUBLIC *p = &pub->publicArea;

		memset(pub, 0, sizeof(*pub));
		p->type = TPM2_ALG_RSA;
		p->nameAlg = TPM2_ALG_SHA256;
		p->objectAttributes =
		    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
		    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
		    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
		p->parameters.rsaDetail.keyBits = 2048;
		p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
		p->parameters.rsaDetail.scheme.details.rsassa.hashAlg =
		    TPM2_ALG_SHA256;
		p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->unique.rsa.size = 256;
	}
	ok = BN_bn2binpad(n, pub->publicArea.unique.rsa.buffer, 256) == 256;
	BN_free(n);
	return ok ? 0 : -1;
}

/* An EK public area with a random 2048-bit modulus: enough for a vTPM EK
 * that only gets certified (the verifier compares public keys and never
 * encrypts to it), and free of RSA key generation for benchmarks. */
static inline int
soft_random_ek(TPM2B_PUBLIC *pub)
{
	tek_ek_template(pub);
	pub->publicArea.unique.rsa.size = 256;
	if (RAND_bytes(pub->publicArea.unique.rsa.buffer, 256) != 1) {
		return -1;
	}
	pub->publicArea.unique.rsa.buffer[0] |= 0x80;
	pub->publicArea.unique.rsa.buffer[255] |= 0x01;
	return 0;
}

/* TPM2_ActivateCredential of (blob, sec) with EK k for the object name:
 * the credential into cred (*credlen), or -1 (HMAC mismatch: another
 * name or another EK). */
static inline int
soft_activate(EVP_PKEY *k, const TPM2B_NAME *name, const TPM2B_ID_OBJECT *blob,
              const TPM2B_ENCRYPTED_SECRET *sec, uint8_t *cred, size_t *credlen)
{
	EVP_PKEY_CTX   *pc = EVP_PKEY_CTX_new(k, NULL);
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	uint8_t         seed[256], sym[16], hk[32], mac[32], iv[16] = {0};
	uint8_t         out[128], buf[256];
	size_t          slen = sizeof(seed), el;
	int             n = 0, f = 0, ret = -1;
	unsigned        ml = 0;
	char           *label = OPENSSL_memdup("IDENTITY", 9);

	if (pc == NULL || cc == NULL || label == NULL ||
	    EVP_PKEY_decrypt_init(pc) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) <= 0) {
		OPENSSL_free(label);
		goto out;
	}
	if (EVP_PKEY_decrypt(pc, seed, &slen, sec->secret, sec->size) <= 0 ||
	    slen != 32 || blob->size < 34 || blob->size - 34 > 128 ||
	    vfy_kdfa(seed, 32, "STORAGE", name->name, name->size, NULL, 0, sym,
	             128) < 0 ||
	    vfy_kdfa(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, hk, 256) < 0) {
		goto out;
	}
	/* HMAC(hk, encIdentity || name) must match */
	el = blob->size - 34;
	memcpy(buf, blob->credential + 34, el);
	memcpy(buf + el, name->name, name->size);
	HMAC(EVP_sha256(), hk, 32, buf, el + name->size, mac, &ml);
	if (blob->credential[1] != 32 ||
	    memcmp(mac, blob->credential + 2, 32) != 0) {
		goto out;
	}
	if (EVP_DecryptInit_ex(cc, EVP_aes_128_cfb(), NULL, sym, iv) != 1 ||
	    EVP_DecryptUpdate(cc, out, &n, blob->credential + 34, (int) el) !=
	        1 ||
	    EVP_DecryptFinal_ex(cc, out + n, &f) != 1) {
		goto out;
	}
	*credlen = (size_t) (out[0] << 8 | out[1]);
	if (*credlen > el - 2) {
		goto out;
	}
	memcpy(cred, out + 2, *credlen);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(pc);
	return ret;
}

/* The broker's certificate for vTPM EK ek of VM uuid on device id, signed
 * by the software AK ak (RSASSA-SHA256, as TPM2_Sign does); PEM into pem.
 * 0 or -1. */
static inline int
soft_ek_cert(EVP_PKEY *ak, const char *id, const char *uuid,
             const TPM2B_PUBLIC *ek, char *pem, size_t len)
{
	uint8_t     serial[16], *tbs = NULL, *der = NULL, sig[512];
	size_t      tbslen = 0, siglen = sizeof(sig), derlen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY   *pk = tek_pub_to_pkey(ek);
	int         ret = -1;

	if (md == NULL || pk == NULL || RAND_bytes(serial, 16) != 1) {
		goto out;
	}
	serial[0] = (uint8_t) ((serial[0] & 0x7f) | 0x40);
	if (attest_ek_tbs(pk, uuid, id, serial, &tbs, &tbslen) < 0 ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ak) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, tbs, tbslen) != 1 ||
	    attest_cert_assemble(tbs, tbslen, sig, siglen, &der, &derlen) < 0 ||
	    tek_der_to_pem(der, derlen, pem, len) < 0) {
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(tbs);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	EVP_MD_CTX_free(md);
	return ret;
}

#endif
