/*
 * attest_cert.c: the pure X.509 parts of vTPM EK certificates (no TPM):
 * the TBSCertificate the AK signs, and the certificate assembled from it
 * and the TPM's signature. attest.c does the TPM side.
 */
#include "sealer.h"
#include "common.h"
#include "tpm_ek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

int
attest_ek_tbs(EVP_PKEY *ek, const char *uuid, const char *device_id,
              const uint8_t serial[16], uint8_t **tbs, size_t *tbslen)
{
	X509          *x = X509_new();
	X509_NAME     *iss = X509_NAME_new(), *sub = X509_NAME_new();
	BIGNUM        *bn = BN_bin2bn(serial, 16, NULL);
	X509_ALGOR    *alg;
	char           cn[64], san[256];
	unsigned char *p = NULL;
	int            len, ret = -1;

	*tbs = NULL;
	if (x == NULL || iss == NULL || sub == NULL || bn == NULL) {
		goto out;
	}
	tek_ak_cn(device_id, cn, sizeof(cn));
	snprintf(san, sizeof(san), "URI:urn:uuid:%s,URI:urn:vtpm:device:%s",
	         uuid, device_id);
	if (!X509_set_version(x, 2) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    !X509_NAME_add_entry_by_txt(iss, "O", MBSTRING_ASC,
	                                (const unsigned char *) "vtpm", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(iss, "CN", MBSTRING_ASC,
	                                (const unsigned char *) cn, -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(sub, "O", MBSTRING_ASC,
	                                (const unsigned char *) "vtpm", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(sub, "CN", MBSTRING_ASC,
	                                (const unsigned char *) uuid, -1, -1,
	                                0) ||
	    !X509_set_issuer_name(x, iss) || !X509_set_subject_name(x, sub) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 365 * 30, 0, NULL) ==
	        NULL ||
	    !X509_set_pubkey(x, ek) ||
	    tek_x509_add_ext(x, NULL, NID_basic_constraints,
	                     "critical,CA:FALSE") < 0 ||
	    tek_x509_add_ext(x, NULL, NID_key_usage,
	                     EVP_PKEY_get_base_id(ek) == EVP_PKEY_EC
	                         ? "critical,keyAgreement"
	                         : "critical,keyEncipherment") < 0 ||
	    tek_x509_add_ext(x, NULL, NID_ext_key_usage, "2.23.133.8.1") < 0 ||
	    tek_x509_add_ext(x, NULL, NID_subject_alt_name, san) < 0) {
		goto out;
	}
	/* the TBS names its signature algorithm: set it without signing */
	alg = (X509_ALGOR *) X509_get0_tbs_sigalg(x);
	if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256WithRSAEncryption),
	                     V_ASN1_NULL, NULL)) {
		goto out;
	}
	if ((len = i2d_re_X509_tbs(x, &p)) <= 0) {
		goto out;
	}
	*tbs = p;
	*tbslen = (size_t) len;
	ret = 0;
out:
	BN_free(bn);
	X509_NAME_free(iss);
	X509_NAME_free(sub);
	X509_free(x);
	return ret;
}

/* DER length octets of n into p (at most 4 bytes); returns their count */
static size_t
der_len(uint8_t *p, size_t n)
{
	if (n < 0x80) {
		p[0] = (uint8_t) n;
		return 1;
	}
	if (n < 0x100) {
		p[0] = 0x81;
		p[1] = (uint8_t) n;
		return 2;
	}
	p[0] = 0x82;
	p[1] = (uint8_t) (n >> 8);
	p[2] = (uint8_t) n;
	return 3;
}

int
attest_cert_assemble(const uint8_t *tbs, size_t tbslen, const uint8_t *sig,
                     size_t siglen, uint8_t **der, size_t *derlen)
{
	/* AlgorithmIdentifier sha256WithRSAEncryption, NULL parameters */
	static const uint8_t alg[] = {0x30, 0x0d, 0x06, 0x09, 0x2a,
	                              0x86, 0x48, 0x86, 0xf7, 0x0d,
	                              0x01, 0x01, 0x0b, 0x05, 0x00};
	uint8_t              bl[4], sl[4];
	size_t               nbl, nsl, body, n = 0;
	uint8_t             *out;

	*der = NULL;
	if (tbslen > 60000 || siglen > 1024) {
		return -1;
	}
	nbl = der_len(bl, siglen + 1);
	body = tbslen + sizeof(alg) + 1 + nbl + siglen + 1;
	nsl = der_len(sl, body);
	if ((out = OPENSSL_malloc(1 + nsl + body)) == NULL) {
		return -1;
	}
	out[n++] = 0x30;
	memcpy(out + n, sl, nsl);
	n += nsl;
	memcpy(out + n, tbs, tbslen);
	n += tbslen;
	memcpy(out + n, alg, sizeof(alg));
	n += sizeof(alg);
	out[n++] = 0x03;
	memcpy(out + n, bl, nbl);
	n += nbl;
	out[n++] = 0x00; /* no unused bits */
	memcpy(out + n, sig, siglen);
	n += siglen;
	*der = out;
	*derlen = n;
	return 0;
}
