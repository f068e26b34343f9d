/*
 * credential.c: TPM2_MakeCredential done in software, as a verifier
 * without a TPM must (TPM 2.0 Library part 1, "Credential Protection"):
 * a random seed, RSA-OAEP-encrypted to the EK with label "IDENTITY";
 * symKey = KDFa(seed, "STORAGE", name), AES-128-CFB over the marshalled
 * TPM2B_DIGEST credential; HMAC key = KDFa(seed, "INTEGRITY"), outer HMAC
 * over (encIdentity || name).
 */
#include "verify.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "tpm_ek.h"

#define AK_ATTRS                                                               \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |                      \
	 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

bool
vfy_is_ak(const TPM2B_PUBLIC *pub)
{
	TPMA_OBJECT a = pub->publicArea.objectAttributes;

	return (a & AK_ATTRS) == AK_ATTRS && !(a & TPMA_OBJECT_DECRYPT) &&
	       (a & TPMA_OBJECT_SENSITIVEDATAORIGIN) &&
	       pub->publicArea.nameAlg == TPM2_ALG_SHA256;
}

int
vfy_kdfa(const uint8_t *key, size_t keylen, const char *label, const uint8_t *u,
         size_t ulen, const uint8_t *v, size_t vlen, uint8_t *out, size_t bits)
{
	size_t   want = bits / 8, done = 0;
	uint32_t counter = 0;
	uint8_t  be[4], bb[4], d[EVP_MAX_MD_SIZE];
	unsigned dlen;

	bb[0] = (uint8_t) (bits >> 24);
	bb[1] = (uint8_t) (bits >> 16);
	bb[2] = (uint8_t) (bits >> 8);
	bb[3] = (uint8_t) bits;
	while (done < want) {
		int ok;

		counter++;
		be[0] = (uint8_t) (counter >> 24);
		be[1] = (uint8_t) (counter >> 16);
		be[2] = (uint8_t) (counter >> 8);
		be[3] = (uint8_t) counter;
		{
			EVP_MAC     *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
			EVP_MAC_CTX *mc = mac ? EVP_MAC_CTX_new(mac) : NULL;
			OSSL_PARAM   p[2];
			size_t       n = 0;

			p[0] = OSSL_PARAM_construct_utf8_string(
			    "digest", (char *) "SHA256", 0);
			p[1] = OSSL_PARAM_construct_end();
			ok = mc != NULL && EVP_MAC_init(mc, key, keylen, p) &&
			     EVP_MAC_update(mc, be, 4) &&
			     EVP_MAC_update(mc, (const uint8_t *) label,
			                    strlen(label) + 1) &&
			     (ulen == 0 || EVP_MAC_update(mc, u, ulen)) &&
			     (vlen == 0 || EVP_MAC_update(mc, v, vlen)) &&
			     EVP_MAC_update(mc, bb, 4) &&
			     EVP_MAC_final(mc, d, &n, sizeof(d));
			dlen = (unsigned) n;
			EVP_MAC_CTX_free(mc);
			EVP_MAC_free(mac);
		}
		if (!ok) {
			return -1;
		}
		size_t take = want - done < dlen ? want - done : dlen;
		memcpy(out + done, d, take);
		done += take;
	}
	return 0;
}

static int
hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
            const uint8_t *b, size_t blen, uint8_t out[32])
{
	EVP_MAC     *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mc = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM   p[2];
	size_t       n = 0;
	int          ok;

	p[0] = OSSL_PARAM_construct_utf8_string("digest", (char *) "SHA256", 0);
	p[1] = OSSL_PARAM_construct_end();
	ok = mc != NULL && EVP_MAC_init(mc, key, keylen, p) &&
	     EVP_MAC_update(mc, a, alen) && EVP_MAC_update(mc, b, blen) &&
	     EVP_MAC_final(mc, out, &n, 32) && n == 32;
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(mac);
	return ok ? 0 : -1;
}

int
vfy_make_credential(const TPM2B_PUBLIC *ek, const TPM2B_NAME *name,
                    const uint8_t *cred, size_t credlen, TPM2B_ID_OBJECT *blob,
                    TPM2B_ENCRYPTED_SECRET *secret, char *err, size_t errlen)
{
	const TPMT_PUBLIC *p = &ek->publicArea;
	EVP_PKEY          *pk = NULL;
	EVP_PKEY_CTX      *pc = NULL;
	EVP_CIPHER_CTX    *cc = NULL;
	uint8_t            seed[32], symkey[16], hkey[32], iv[16] = {0};
	uint8_t            cv[2 + 64], enc[2 + 64], mac[32];
	char              *label = NULL;
	size_t             slen;
	int                outl = 0, fin = 0, ret = -1;

	memset(blob, 0, sizeof(*blob));
	memset(secret, 0, sizeof(*secret));
	if (credlen == 0 || credlen > 64 || p->type != TPM2_ALG_RSA ||
	    p->nameAlg != TPM2_ALG_SHA256 ||
	    p->parameters.rsaDetail.symmetric.algorithm != TPM2_ALG_AES ||
	    p->parameters.rsaDetail.symmetric.keyBits.aes != 128 ||
	    p->parameters.rsaDetail.symmetric.mode.aes != TPM2_ALG_CFB) {
		snprintf(err, errlen,
		         "EK is not an RSA key with SHA-256 and "
		         "AES-128-CFB (template L-1)");
		return -1;
	}
	if ((pk = tek_pub_to_pkey(ek)) == NULL ||
	    RAND_bytes(seed, sizeof(seed)) != 1) {
		snprintf(err, errlen, "EK public key unusable");
		goto out;
	}
	/* the seed, RSA-OAEP(SHA-256) with label "IDENTITY\0" */
	label = OPENSSL_memdup("IDENTITY", 9);
	slen = sizeof(secret->secret);
	if (label == NULL || (pc = EVP_PKEY_CTX_new(pk, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pc) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) <= 0) {
		snprintf(err, errlen, "RSA-OAEP setup failed");
		goto out;
	}
	label = NULL; /* the context owns it now */
	if (EVP_PKEY_encrypt(pc, secret->secret, &slen, seed, sizeof(seed)) <=
	    0) {
		snprintf(err, errlen, "RSA-OAEP encryption failed");
		goto out;
	}
	secret->size = (UINT16) slen;
	/* encIdentity = AES-128-CFB(KDFa(seed, STORAGE, name), TPM2B cred) */
	cv[0] = (uint8_t) (credlen >> 8);
	cv[1] = (uint8_t) credlen;
	memcpy(cv + 2, cred, credlen);
	if (vfy_kdfa(seed, sizeof(seed), "STORAGE", name->name, name->size,
	             NULL, 0, symkey, 128) < 0 ||
	    vfy_kdfa(seed, sizeof(seed), "INTEGRITY", NULL, 0, NULL, 0, hkey,
	             256) < 0 ||
	    (cc = EVP_CIPHER_CTX_new()) == NULL ||
	    !EVP_EncryptInit_ex(cc, EVP_aes_128_cfb(), NULL, symkey, iv) ||
	    !EVP_EncryptUpdate(cc, enc, &outl, cv, (int) (credlen + 2)) ||
	    !EVP_EncryptFinal_ex(cc, enc + outl, &fin)) {
		snprintf(err, errlen, "credential encryption failed");
		goto out;
	}
	outl += fin;
	if (hmac_sha256(hkey, sizeof(hkey), enc, (size_t) outl, name->name,
	                name->size, mac) < 0) {
		snprintf(err, errlen, "HMAC failed");
		goto out;
	}
	/* TPMS_ID_OBJECT: TPM2B_DIGEST integrityHMAC || encIdentity */
	blob->credential[0] = 0;
	blob->credential[1] = 32;
	memcpy(blob->credential + 2, mac, 32);
	memcpy(blob->credential + 34, enc, (size_t) outl);
	blob->size = (UINT16) (34 + outl);
	ret = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(symkey, sizeof(symkey));
	OPENSSL_cleanse(hkey, sizeof(hkey));
	OPENSSL_free(label);
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pk);
	return ret;
}
