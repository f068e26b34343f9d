/*
 * verify.h: vtpm-verify, the verifier (controller side). It proves a
 * device's attestation key with a software MakeCredential, issues AK
 * certificates from its own CA, checks vTPM EK certificate chains
 * (vTPM EK <- AK <- verifier CA) and keeps a registry of device AKs and
 * EK -> device bindings, raising a clone alert when one vTPM EK shows up
 * behind two devices' AKs.
 */
#ifndef VTPM_VERIFY_H
#define VTPM_VERIFY_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_tpm2_types.h>

#define VFY_CRED_LEN 32 /* challenge secret bytes */

/* registry.c: the storage behind one small interface (SQLite here; a
 * PostgreSQL backend would fill the same table of functions). */
struct vfy_device {
	char id[ATTEST_ID_LEN]; /* hex AK name */
	char ek_pub[ATTEST_PUB_LEN];
	char ak_pub[ATTEST_PUB_LEN];
	char state[16];       /* "pending" (challenged) or "active" */
	char secret_hash[65]; /* sha256 hex of the pending challenge */
	char ak_cert[ATTEST_PEM_LEN];
};

struct registry_ops {
	const char *name;
	int (*open)(void **h, const char *dsn, char *err, size_t errlen);
	void (*close)(void *h);
	/* insert or replace */
	int (*device_put)(void *h, const struct vfy_device *d, char *err,
	                  size_t errlen);
	/* 1 found, 0 unknown, -1 error */
	int (*device_get)(void *h, const char *id, struct vfy_device *d,
	                  char *err, size_t errlen);
	/* Record that ek_fp was seen behind device (for vm). 0: no other
	 * device has it; 1: other (the first other device) has it too; -1. */
	int (*bind)(void *h, const char *ek_fp, const char *device,
	            const char *vm, char *other, size_t otherlen, char *err,
	            size_t errlen);
	int (*alert_add)(void *h, const char *ek_fp, const char *first,
	                 const char *second, const char *vm, char *err,
	                 size_t errlen);
	/* number of clone alerts recorded, or -1 */
	int (*alert_count)(void *h, char *err, size_t errlen);
	/* fn for every alert, oldest first; 0 or -1 */
	int (*alert_list)(void *h,
	                  void (*fn)(void *arg, const char *ek_fp,
	                             const char *first, const char *second,
	                             const char *vm, int64_t at),
	                  void *arg, char *err, size_t errlen);
	/* attestation tables (hw_eks, nonces, pcr_refs) */
	/* The device's hardware EK certificate (PEM, "" when trusted on
	 * first use without one) and how it is trusted ("maker": chain to
	 * --tpm-ca checked; "tofu"); insert or replace. */
	int (*hw_ek_put)(void *h, const char *device, const char *ek_cert,
	                 const char *trust, char *err, size_t errlen);
	/* 1 found, 0 none, -1 error */
	int (*hw_ek_get)(void *h, const char *device, char *ek_cert,
	                 size_t certlen, char *trust, size_t trustlen,
	                 char *err, size_t errlen);
	/* A quote nonce (hex) issued to device. */
	int (*nonce_add)(void *h, const char *device, const char *nonce,
	                 char *err, size_t errlen);
	/* Use it, atomically: 1 taken now, 0 never issued to device, 2
	 * already used, -1 error. */
	int (*nonce_take)(void *h, const char *device, const char *nonce,
	                  char *err, size_t errlen);
	/* The device's reference PCR values (sha256, bit i of mask = PCR
	 * i): replace all of them. */
	int (*ref_put)(void *h, const char *device, uint32_t mask,
	               const uint8_t values[16][32], char *err, size_t errlen);
	/* 1 found (mask, values filled), 0 none recorded, -1 error */
	int (*ref_get)(void *h, const char *device, uint32_t *mask,
	               uint8_t values[16][32], char *err, size_t errlen);
};

extern const struct registry_ops vfy_registry_sqlite;

struct registry {
	const struct registry_ops *ops;
	void                      *h;
};
/* dsn: "sqlite:PATH" or a plain path (SQLite). */
int  vfy_registry_open(struct registry *r, const char *dsn, char *err,
                       size_t errlen);
void vfy_registry_close(struct registry *r);

/* credential.c: TPM2_MakeCredential in software (TPM 2.0 part 1, 24). */
/* KDFa with SHA-256 (label includes its NUL): bits/8 bytes into out. */
int vfy_kdfa(const uint8_t *key, size_t keylen, const char *label,
             const uint8_t *u, size_t ulen, const uint8_t *v, size_t vlen,
             uint8_t *out, size_t bits);
/* Wrap cred for the TPM holding the RSA EK ek and the object named name.
 * 0 or -1 with err. */
int vfy_make_credential(const TPM2B_PUBLIC *ek, const TPM2B_NAME *name,
                        const uint8_t *cred, size_t credlen,
                        TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *secret,
                        char *err, size_t errlen);
/* Is pub a restricted fixedTPM signing key (an AK)? */
bool vfy_is_ak(const TPM2B_PUBLIC *pub);

/* chain.c: the CA, AK certificates, EK certificate chains. */
/* Load <dir>/ca.key + ca.crt, creating them (EC P-256) when absent. */
int vfy_ca_load(const char *dir, EVP_PKEY **key, X509 **cert, char *err,
                size_t errlen);
/* An AK certificate (CA:TRUE, pathlen 0: it signs vTPM EK certificates)
 * for the AK public area, subject CN tek_ak_cn(device_id). PEM into pem. */
int   vfy_issue_ak_cert(EVP_PKEY *cakey, X509 *cacert, const TPM2B_PUBLIC *ak,
                        const char *device_id, char *pem, size_t pemlen,
                        char *err, size_t errlen);
X509 *vfy_pem_cert(const char *pem);
/* Verify ek_pem against ca -> ak_pem; then, when given: the certified key
 * is ek, the SAN names vm (urn:uuid:) and device (urn:vtpm:device:).
 * 0 or -1 with err saying what failed. */
int vfy_check_ek_cert(X509 *ca, const char *ak_pem, const char *ek_pem,
                      const TPM2B_PUBLIC *ek, const char *vm,
                      const char *device, char *err, size_t errlen);

/* Check that the EK certificate pem chains to a CA in dir (every PEM
 * certificate in *.pem / *.crt files there: self-signed ones are trust
 * anchors, the others intermediates) and certifies ek. 0 or -1 with err
 * saying what failed. */
int vfy_check_maker_cert(const char *dir, const char *pem,
                         const TPM2B_PUBLIC *ek, char *err, size_t errlen);

/* quote.c: TPM2_Quote checks and PCR value lists. */
struct vfy_quote {
	uint32_t mask; /* PCRs quoted */
	uint64_t clock;
	uint32_t reset_count, restart_count;
	bool     safe;
};
/* {"0": hex, ...} into mask/values. 0 or -1 with err. */
int vfy_pcrs_parse(const cJSON *o, uint32_t *mask, uint8_t values[16][32],
                   char *err, size_t errlen);
/* The quote attest (TPMS_ATTEST bytes) signed sig by ak (RSASSA-SHA256),
 * made for nonce, over the sha256 PCRs of mask whose values are values.
 * 0 (q filled) or -1 with err. */
int vfy_check_quote(const TPM2B_PUBLIC *ak, const uint8_t *attest, size_t len,
                    const uint8_t *sig, size_t siglen, const uint8_t *nonce,
                    size_t noncelen, uint32_t mask,
                    const uint8_t values[16][32], struct vfy_quote *q,
                    char *err, size_t errlen);
/* The reference PCRs whose value differs (or that were not quoted). */
uint32_t vfy_pcrs_differ(uint32_t mask, const uint8_t values[16][32],
                         uint32_t refmask, const uint8_t ref[16][32]);

/* main.c's subcommands: one table of {name, function}. */
struct vfy_ctx {
	char            db[4096];     /* registry DSN */
	char            ca[4096];     /* CA directory */
	char            tpm_ca[4096]; /* TPM makers' CA certificates, "" none */
	bool            tofu; /* trust a hardware EK without a checked chain */
	struct registry reg;  /* opened on demand by vfy_ctx_registry */
	bool            reg_open;
};
int vfy_ctx_registry(struct vfy_ctx *c, char *err, size_t errlen);

/* commands.c */
int vfy_cmd_ca(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_challenge(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_activate(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_verify_cert(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_check(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_alerts(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_nonce(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_reference(struct vfy_ctx *c, int argc, char **argv);

#endif
