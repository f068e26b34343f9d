/*
 * tpm_ek.h: the TPM helpers of libtpmkit that the launcher, the key
 * broker, vtpmctl and the verifier share: the standard EK templates
 * (RSA-2048 L-1, ECC P-256 L-2) and EK creation (ek.c), the EK-certificate NV
 * index (nv.c), conversions between TPM public areas, hex, names and OpenSSL
 * keys (public.c, hex.c), certificate helpers (x509.c) and return codes
 * (rc.c). The vTPM command channel is in vtpm_chan.h, swtpm's control
 * channel in swtpm_ctrl.h.
 */
#ifndef VTPM_TPM_EK_H
#define VTPM_TPM_EK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>

#define TEK_EK_HANDLE        0x81010001u /* vTPM and hardware EK (TCG) */
#define TEK_AK_HANDLE        0x81010002u /* hardware AK (broker) */
#define TEK_EKCERT_INDEX     0x01c00002u /* RSA EK certificate NV index */
#define TEK_EKCERT_ECC_INDEX 0x01c0000au /* ECC P-256 EK certificate */
#define TEK_CERT_MAX         2048        /* largest EK certificate we write */

/* The TCG EK Credential Profile template L-1 (RSA-2048, AES-128-CFB,
 * PolicySecret(TPM_RH_ENDORSEMENT) as authPolicy). */
void tek_ek_template(TPM2B_PUBLIC *pub);
/* Template L-1 (alg TPM2_ALG_RSA) or L-2 (TPM2_ALG_ECC: NIST P-256,
 * AES-128-CFB, the same policy): what tpm2_createek -G rsa|ecc uses. */
void tek_ek_template_alg(TPM2B_PUBLIC *pub, TPM2_ALG_ID alg);
/* TPM2_ALG_RSA or TPM2_ALG_ECC when pub is an EK of template L-1 or L-2
 * (type, size, attributes, policy, symmetric), else TPM2_ALG_NULL. */
TPM2_ALG_ID tek_ek_alg(const TPM2B_PUBLIC *pub);
/* Does pub look like an EK of template L-1? */
bool tek_is_ek_template(const TPM2B_PUBLIC *pub);

/* CreatePrimary(endorsement, template L-1 or L-2 by alg); handle 0:
 * flush it again (the key is derived from the endorsement seed, so the
 * same one comes back on the next CreatePrimary); else EvictControl to
 * handle (an object already there is evicted first). *pub
 * (Esys-allocated, Esys_Free) gets the EK public area. */
int tek_ek_create(ESYS_CONTEXT *e, TPM2_ALG_ID alg, uint32_t handle,
                  TPM2B_PUBLIC **pub, char *err, size_t errlen);
/* tek_ek_create of the RSA EK, persisted at handle. */
int tek_ek_provision(ESYS_CONTEXT *e, uint32_t handle, TPM2B_PUBLIC **pub,
                     char *err, size_t errlen);
/* ReadPublic of the persistent object at handle. 0, 1 when absent, -1. */
int tek_read_public(ESYS_CONTEXT *e, uint32_t handle, TPM2B_PUBLIC **pub,
                    char *err, size_t errlen);
/* Define index (platform auth, the attributes swtpm_setup uses for EK
 * certificates) with len bytes, write der, lock it. */
int tek_nv_write_cert(ESYS_CONTEXT *e, uint32_t index, const uint8_t *der,
                      size_t len, char *err, size_t errlen);
/* Read index (owner auth) into buf. Returns the length, 0 when the index
 * does not exist, -1 on error. */
int tek_nv_read(ESYS_CONTEXT *e, uint32_t index, uint8_t *buf, size_t max,
                char *err, size_t errlen);

/* Hex of a marshalled TPM2B_PUBLIC and back. 0 or -1. */
int tek_pub_to_hex(const TPM2B_PUBLIC *pub, char *hex, size_t hexlen);
int tek_pub_from_hex(const char *hex, TPM2B_PUBLIC *pub);
/* The TPM name of pub: nameAlg (2 bytes) || H(marshalled TPMT_PUBLIC). */
int tek_pub_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *name);
/* An OpenSSL key for an RSA or ECC P-256 public area (caller frees).
 * NULL on error. */
EVP_PKEY *tek_pub_to_pkey(const TPM2B_PUBLIC *pub);
/* The common name of the AK certificate's subject (and so of every EK
 * certificate's issuer) for a device: "vtpm-ak-" + 32 hex digits of the
 * AK name's digest. device_id is the hex AK name. */
void tek_ak_cn(const char *device_id, char *cn, size_t len);
/* Add extension nid (OpenSSL config syntax, e.g. "critical,CA:FALSE") to
 * x; issuer (may be NULL) resolves "keyid" references. 0 or -1. */
int tek_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value);
/* A DER certificate as NUL-terminated PEM in pem; -1 if it does not parse
 * or fit. */
int tek_der_to_pem(const uint8_t *der, size_t len, char *pem, size_t pemlen);
/* rc.c: "0x%x (decoded text)" into buf; returns buf. Thread-safe: the one
 * TPM return-code formatter for every daemon and thread. */
const char *tek_rc_str(TSS2_RC rc, char *buf, size_t len);
/* "what: 0x%x (text)" into err; returns -1. */
int tek_fail(char *err, size_t errlen, const char *what, TSS2_RC rc);

#endif
