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

/* registry.c: the storage behind one table of functions (struct
 * registry_ops), with two backends: SQLite (registry_sqlite.c, the
 * embedded default) and PostgreSQL (registry_pg.c, one database shared by
 * many verifier processes). Every operation that decides something (an
 * activation, a binding with its clone alert, a move, a revocation, an
 * acknowledgement) is one transaction in the backend, so concurrent
 * verifiers cannot both win a race. Results: 0 done, VFY_NO (a named
 * condition, see each function), -1 error with err naming the database. */
#define VFY_NO      1  /* not found / condition not met */
#define VFY_NO_DEV  2  /* move: target device unknown or not active */
#define VFY_WHO_LEN 64 /* operator name recorded with move/revoke/ack */
#define VFY_SCHEMA  3  /* schema version this binary writes */

struct vfy_device {
	char    id[ATTEST_ID_LEN]; /* hex AK name */
	char    ek_pub[ATTEST_PUB_LEN];
	char    ak_pub[ATTEST_PUB_LEN];
	char    state[16];       /* "pending", "active" or "revoked" */
	char    secret_hash[65]; /* sha256 hex of the pending challenge */
	char    ak_cert[ATTEST_PEM_LEN];
	int64_t updated;    /* unix seconds */
	int64_t revoked_at; /* 0: not revoked */
	char    revoked_by[VFY_WHO_LEN];
};

struct vfy_binding {
	char    ek_fp[ATTEST_ID_LEN]; /* hex TPM name of the vTPM EK */
	char    device[ATTEST_ID_LEN];
	char    vm[UUID_LEN];
	char    state[16]; /* "active" or "revoked" (device revoked) */
	int64_t first_seen, last_seen;
};

struct vfy_alert {
	int64_t id;
	char    ek_fp[ATTEST_ID_LEN];
	char    first[ATTEST_ID_LEN];  /* the device the EK was bound to */
	char    second[ATTEST_ID_LEN]; /* the device that reported it too */
	char    vm[UUID_LEN];
	int64_t at;
	int64_t acked_at; /* 0: not reviewed */
	char    acked_by[VFY_WHO_LEN];
};

struct vfy_move {
	char    ek_fp[ATTEST_ID_LEN];
	char    from[ATTEST_ID_LEN];
	char    to[ATTEST_ID_LEN];
	char    vm[UUID_LEN];
	char    by[VFY_WHO_LEN];
	int64_t at;
};

/* What a report did to the registry (ops->report). */
struct vfy_verdict {
	bool    clone;                /* the EK is bound to another device */
	char    other[ATTEST_ID_LEN]; /* that device (the first bound) */
	int64_t alert_id;             /* the alert for this pair */
	bool    alert_new;            /* raised by this report */
};

/* Listing filters: NULL or "" matches all. */
struct vfy_filter {
	const char *device;
	const char *ek_fp;
	const char *state;
};

struct registry_ops {
	const char *name;
	/* connect and bring the schema to VFY_SCHEMA (migrations in order) */
	int (*open)(void **h, const char *dsn, char *err, size_t errlen);
	void (*close)(void *h);
	/* a new challenge: device d pending with d->secret_hash (insert or
	 * replace); VFY_NO when the device is revoked */
	int (*challenge)(void *h, const struct vfy_device *d, char *err,
	                 size_t errlen);
	/* 1 found, 0 unknown, -1 error */
	int (*device_get)(void *h, const char *id, struct vfy_device *d,
	                  char *err, size_t errlen);
	/* pending -> active with ak_cert, only while the pending secret is
	 * still secret_hash (consumed: one activation per challenge);
	 * VFY_NO when it is not (already used, re-challenged, revoked) */
	int (*activate)(void *h, const char *id, const char *secret_hash,
	                const char *ak_cert, char *err, size_t errlen);
	/* bind ek_fp to device for vm; when an active binding of another
	 * device exists: v->clone and exactly one alert per EK and device
	 * pair, however many verifiers report it at once */
	int (*report)(void *h, const char *ek_fp, const char *device,
	              const char *vm, struct vfy_verdict *v, char *err,
	              size_t errlen);
	/* a planned migration: the EK's active bindings on other devices are
	 * replaced by one on device to (recorded in moves); VFY_NO: EK
	 * unknown, VFY_NO_DEV: to unknown or not active */
	int (*move)(void *h, const char *ek_fp, const char *to, const char *by,
	            char *err, size_t errlen);
	/* device and its bindings revoked; VFY_NO: unknown; 0 also when it
	 * already was */
	int (*revoke)(void *h, const char *id, const char *by, char *err,
	              size_t errlen);
	/* alert reviewed; VFY_NO: unknown; VFY_NO_DEV: already acknowledged
	 * (a->acked_by/at says by whom) */
	int (*ack)(void *h, int64_t id, const char *by, struct vfy_alert *a,
	           char *err, size_t errlen);
	/* listings: fn per row, oldest first; 0 or -1 */
	int (*devices)(void *h, const struct vfy_filter *f,
	               void (*fn)(void *arg, const struct vfy_device *d),
	               void *arg, char *err, size_t errlen);
	int (*bindings)(void *h, const struct vfy_filter *f,
	                void (*fn)(void *arg, const struct vfy_binding *b),
	                void *arg, char *err, size_t errlen);
	int (*alerts)(void *h, void (*fn)(void *arg, const struct vfy_alert *a),
	              void *arg, char *err, size_t errlen);
	int (*moves)(void *h, const struct vfy_filter                      *f,
	             void (*fn)(void *arg, const struct vfy_move *m), void *arg,
	             char *err, size_t errlen);
	/* schema version in the database, or -1 */
	int (*schema_version)(void *h, char *err, size_t errlen);
	/* schema 3: hardware EK certificates, quote nonces, reference PCRs */
	/* The device's hardware EK certificate (PEM, "" when trusted on
	 * first use without one) and how it is trusted ("maker": chain to
	 * the TPM maker CA checked; "tofu"); insert or replace. */
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
	 * i): replace all of them, in one transaction. */
	int (*ref_put)(void *h, const char *device, uint32_t mask,
	               const uint8_t values[16][32], char *err, size_t errlen);
	/* 1 found (mask, values filled), 0 none recorded, -1 error */
	int (*ref_get)(void *h, const char *device, uint32_t *mask,
	               uint8_t values[16][32], char *err, size_t errlen);
};

extern const struct registry_ops vfy_registry_sqlite;
extern const struct registry_ops vfy_registry_pg;

struct registry {
	const struct registry_ops *ops;
	void                      *h;
};
/* dsn: "sqlite:PATH" or a plain path (SQLite); "postgresql://...",
 * "postgres://..." (libpq URI) or "pg:KEYWORD=VALUE ..." (libpq keyword
 * DSN) for PostgreSQL. */
int  vfy_registry_open(struct registry *r, const char *dsn, char *err,
                       size_t errlen);
void vfy_registry_close(struct registry *r);
/* the pair key of an alert: the two device ids in byte order */
void vfy_pair(const char *a, const char *b, const char **lo, const char **hi);

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

/* Exit codes of every command. */
enum {
	VFY_EXIT_OK = 0,
	VFY_EXIT_FAIL = 1, /* refused or failed */
	VFY_EXIT_USAGE = 2,
	VFY_EXIT_CLONE = 3,   /* check: clone alert */
	VFY_EXIT_UNKNOWN = 5, /* no such device, EK or alert (4 is kept for
	                       * the quote check: boot state differs) */
};
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
	EVP_PKEY       *cakey; /* loaded on demand by vfy_ctx_ca */
	X509           *cacert;
};
int vfy_ctx_registry(struct vfy_ctx *c, char *err, size_t errlen);
int vfy_ctx_ca(struct vfy_ctx *c, char *err, size_t errlen);

/* commands.c */
int vfy_cmd_ca(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_challenge(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_activate(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_verify_cert(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_check(struct vfy_ctx *c, int argc, char **argv);

/* admin.c: the operator's commands and listings */
int vfy_cmd_alerts(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_devices(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_bindings(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_moves(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_move(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_revoke(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_ack(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_schema(struct vfy_ctx *c, int argc, char **argv);
/* commands.c: quotes */
int vfy_cmd_nonce(struct vfy_ctx *c, int argc, char **argv);
int vfy_cmd_reference(struct vfy_ctx *c, int argc, char **argv);

#endif
