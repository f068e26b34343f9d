/*
 * sealer.h: the key broker. The only process that opens the hardware TPM:
 * a 256-bit master key sealed under the SRK with a PolicyPCR on the vault
 * PCR set, unsealed on every release (policy session on the TPM now) and
 * turned into per-VM keys with HKDF-SHA256.
 *
 * Layering (each file calls only the ones below it, never up):
 *   main.c                  options, run until a signal
 *   serve.c                 the keybroker service (KeyRelease, AttestRequest),
 *                           broker_open/broker_close
 *   update.c                planned updates, the keybroker-admin service
 *   escrow.c                recovery escrow (called by update.c's handler)
 *   core.c                  struct broker: configuration and vault paths,
 *                           the TPM lock, the blob in use, the unseal and
 *                           KeyBrokerStatus
 *   attest.c  seal.c  policy.c  srk.c  predict.c  tpm.c
 *                           the AK and EK certificates; seal/unseal and
 *                           blob files; PCR policy digests; the SRK;
 *                           update decisions; the ESAPI connection
 *   (libraries: keyfmt for PCR sets, HKDF and the escrow record; tpmkit;
 *   common; pubsub)
 */
#ifndef VTPM_SEALER_H
#define VTPM_SEALER_H

#include "common.h"
#include "keyfmt.h"
#include "msg.h"
#include "tpm_ek.h" /* tek_rc_str: TPM return codes as text */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <tss2/tss2_esys.h>

/* Hardware-TPM persistent handles the broker owns or reuses. They are
 * configuration (broker_cfg.handles, --srk-handle/--ek-handle/--ak-handle);
 * the defaults collide with nothing EVE-OS's tpmmgr keeps (its EK
 * 0x81000001, SRK 0x81000002, AIK 0x81000003, quote key 0x81000004, ECDH
 * key 0x81000005, device key 0x817FFFFF). The EK default is the TCG one. */
#define SEAL_DEFAULT_SRK 0x81000100u
#define SEAL_DEFAULT_EK  0x81010001u
#define SEAL_DEFAULT_AK  0x81010002u
struct tpm_handles {
	uint32_t srk, ek, ak;
};
#define TPM_HANDLES_DEFAULT                                                    \
	{                                                                      \
		SEAL_DEFAULT_SRK, SEAL_DEFAULT_EK, SEAL_DEFAULT_AK             \
	}
/* "0x81000100" (or decimal) into *h: a persistent handle
 * (0x81000000-0x81FFFFFF). 0 or -1 with err. */
int tpm_handle_parse(const char *s, uint32_t *h, char *err, size_t errlen);
/* The three must differ. 0 or -1 with err. */
int tpm_handles_check(const struct tpm_handles *h, char *err, size_t errlen);
#define SEAL_FILE     "master.sealed.json"
#define SEAL_BLOB_MAX 1024 /* marshalled TPM2B_PUBLIC or PRIVATE */

/* tpm.c: one ESAPI context over the TCTI loader, serialized by a mutex
 * (no resource manager in front of the simulated TPM: one command stream,
 * every transient object and session flushed after use). */
struct tpm {
	char               tcti[256]; /* TCTI config string for the loader */
	TSS2_TCTI_CONTEXT *tctx;
	ESYS_CONTEXT      *ectx;
	ESYS_TR            srk;     /* ESYS_TR_NONE until looked up */
	unsigned           reopens; /* connections re-established */
	/* the configured handles (broker_cfg.handles, copied at open;
	 * tpm_open sets the defaults) */
	struct tpm_handles h;
};

/* Retry a TPM call on RETRY/YIELDED/TESTING/busy with backoff; expr is
 * re-evaluated. rc receives the last return code. */
#define TPM_RETRY(rc, expr)                                                    \
	do {                                                                   \
		unsigned tpm_try_ = 0;                                         \
		for (;;) {                                                     \
			(rc) = (expr);                                         \
			if (!tpm_rc_retryable(rc) ||                           \
			    tpm_backoff(++tpm_try_) < 0) {                     \
				break;                                         \
			}                                                      \
		}                                                              \
	} while (0)

int  tpm_open(struct tpm *t, const char *tcti, char *err, size_t errlen);
void tpm_close(struct tpm *t);
/* Drop and re-open the connection (the TPM restarted, the socket broke). */
int  tpm_reopen(struct tpm *t, char *err, size_t errlen);
bool tpm_is_open(const struct tpm *t);
bool tpm_rc_retryable(TSS2_RC rc);
/* The connection itself failed (TCTI layer): worth a re-open. */
bool tpm_rc_is_io(TSS2_RC rc);
/* Sleeps 5, 10, 20 ... ms for attempt n; -1 when attempts are used up. */
int tpm_backoff(unsigned attempt);
/* Flush a transient object or session and set *h to ESYS_TR_NONE. */
void tpm_flush(struct tpm *t, ESYS_TR *h);
/* TPM2_RC_POLICY_FAIL and friends: the PCR policy did not hold. */
bool tpm_rc_is_policy(TSS2_RC rc);

/* seal.c, policy.c, srk.c: the PCR set and policy digests (policy.c),
 * the SRK (srk.c), seal/unseal and the sealed-blob file (seal.c). */

/* One policy branch: PolicyPCR over mask with the values the PCRs had (or
 * are predicted to have). A planned update adds a second branch and a
 * PolicyOR over the branches' digests; a blob with one branch uses
 * PolicyPCR alone. */
struct seal_branch {
	uint32_t     mask;                     /* bit i = PCR i */
	uint8_t      values[SEAL_PCR_MAX][32]; /* sha256 bank, by index */
	TPM2B_DIGEST digest;                   /* PolicyPCR digest */
};

#define SEAL_BRANCHES_MAX 2
struct seal_blob {
	uint32_t           mask; /* PCR set sealed to (all branches share it) */
	int                nbranches;
	struct seal_branch branch[SEAL_BRANCHES_MAX];
	TPM2B_DIGEST       auth_policy; /* the sealed object's authPolicy */
	TPM2B_PUBLIC       pub;
	TPM2B_PRIVATE      priv;
	uint32_t           srk; /* the parent's persistent handle ("srk") */
};

/* The sha256 TPM selection of the PCRs in mask. */
void seal_pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel);
/* PolicyPCR digest of br's values (trial session) into br->digest. */
int seal_branch_digest(struct tpm *t, struct seal_branch *br, TSS2_RC *rc,
                       char *err, size_t errlen);
/* PolicyOR digest over b's branch digests (trial session). */
int seal_or_digest(struct tpm *t, const struct seal_blob *b, TPM2B_DIGEST *out,
                   TSS2_RC *rc, char *err, size_t errlen);
/* Look up (or create and persist) the SRK at t->h.srk. A key already
 * there is reused when it is a storage parent we can seal under (a
 * restricted decryption key, fixedTPM/fixedParent, userWithAuth, AES-CFB
 * symmetric, RSA 2048+ or ECC P-256/P-384: our own ECC template, or the
 * OS's SRK, e.g. EVE's RSA-2048 one); anything else is refused with the
 * reason and never touched. rc gets the TPM rc. */
int seal_srk(struct tpm *t, TSS2_RC *rc, char *err, size_t errlen);
/* Read the sha256 PCRs of mask into values[index]. */
int seal_pcr_read(struct tpm *t, uint32_t mask, uint8_t values[][32],
                  TSS2_RC *rc, char *err, size_t errlen);
/* Seal master (SEAL_MASTER_LEN bytes) under the SRK to the current values
 * of the PCRs in mask; fills b. */
int seal_create(struct tpm *t, uint32_t mask, const uint8_t *master,
                struct seal_blob *b, TSS2_RC *rc, char *err, size_t errlen);
/* The same with a second policy branch: the PCRs of mask may also hold
 * predicted[index] (a planned update); authPolicy = PolicyOR of both
 * PolicyPCR digests. */
int seal_create_or(struct tpm *t, uint32_t mask, const uint8_t *master,
                   const uint8_t (*predicted)[32], struct seal_blob *b,
                   TSS2_RC *rc, char *err, size_t errlen);
/* Policy-session unseal into master (SEAL_MASTER_LEN bytes, caller's
 * secmem): PolicyPCR on the values now, then PolicyOR over the branches
 * when there are two. Returns 0; -2 when the PCR policy did not hold; -1
 * on other errors; *rc and err say what. */
int seal_unseal(struct tpm *t, const struct seal_blob *b, uint8_t *master,
                TSS2_RC *rc, char *err, size_t errlen);
/* The same without the hygiene (unsalted session, no parameter
 * encryption, no buffer scrub): only the bench's reference floor. */
int seal_unseal_plain(struct tpm *t, const struct seal_blob *b, uint8_t *master,
                      TSS2_RC *rc, char *err, size_t errlen);
/* PCRs of b whose current value differs from seal time (any branch). */
int seal_changed_pcrs(struct tpm *t, const struct seal_blob *b,
                      uint32_t *changed, TSS2_RC *rc, char *err, size_t errlen);
/* File form (JSON, no secret in it): load and store, durable. */
int seal_blob_store(const char *path, const struct seal_blob *b);
int seal_blob_load(const char *path, struct seal_blob *b, char *err,
                   size_t errlen);

/* attest.c: the attestation key (AK, restricted RSA-2048 signing key
 * under the hardware EK, both persistent), ActivateCredential, and X.509
 * certificates for vTPM EKs signed by the AK (TPM2_Hash ticket +
 * TPM2_Sign). */
#define ATTEST_AK_CERT_FILE "ak.crt"
#define ATTEST_TBS_MAX      1024 /* TPM2_Hash takes at most this much */
struct attest {
	bool     ready; /* EK and AK looked up or made */
	char     vault[4096];
	uint32_t pcrs; /* vault PCR set (broker_cfg.pcrs): quotes */
	/* the hardware TPM's EK certificates from NV (PEM, "" = none) */
	char         hw_ek_cert[ATTEST_PEM_LEN];
	char         hw_ek_cert_ecc[ATTEST_PEM_LEN];
	TPM2B_PUBLIC ek_pub, ak_pub;
	TPM2B_NAME   ak_name;
	char         device_id[ATTEST_ID_LEN]; /* hex of ak_name */
	unsigned     certs;                    /* EK certificates issued */
};
struct x509_st;
struct evp_pkey_st;
/* Look up (or create and persist) EK 0x81010001 and AK 0x81010002 on the
 * hardware TPM. Call with the TPM lock held. */
int attest_setup(struct attest *a, struct tpm *t, char *err, size_t errlen);
/* Serve one AttestRequest (takes mu around TPM use). peer must be the
 * launcher's uid (the socket already admits only that one). Always
 * fills rep; returns 0. */
int attest_handle(struct attest *a, struct tpm *t, pthread_mutex_t *mu,
                  const struct attest_req *req, uid_t peer, uid_t launcher,
                  struct attest_rep *rep);
/* attest_cert.c, the pure parts (unit tests): the TBSCertificate of a vTPM EK
 * certificate (sha256WithRSAEncryption, SAN urn:uuid:<vm> and
 * urn:vtpm:device:<device_id>, issuer CN tek_ak_cn(device_id)) in *tbs
 * (OPENSSL_malloc'd); and the certificate from a TBS and its RSA
 * signature, as DER (*der OPENSSL_malloc'd). 0 or -1. */
int attest_ek_tbs(struct evp_pkey_st *ek, const char *uuid,
                  const char *device_id, const uint8_t serial[16],
                  uint8_t **tbs, size_t *tbslen);
int attest_cert_assemble(const uint8_t *tbs, size_t tbslen, const uint8_t *sig,
                         size_t siglen, uint8_t **der, size_t *derlen);

/* The broker's configuration (main.c fills it). */
struct broker_cfg {
	char     rundir[4096];
	char     vault[4096]; /* <root>/persist/vtpm */
	char     tcti[256];   /* "none" = no hardware TPM */
	uid_t    launcher_uid;
	uint32_t pcrs;
	int      nworkers;
	/* update.c: boots on the old values before a pending
	 * update is dropped (default 3); the controller's RSA public key
	 * (PEM) for the recovery escrow, "" = off */
	int  pending_boots;
	char escrow_pubkey[4096];
	/* hardware-TPM handles (--srk-handle, --ek-handle, --ak-handle);
	 * a zero field takes its default. The one place they are set: the
	 * broker hands them to seal.c, srk.c and attest.c in struct tpm
	 * (t->h). */
	struct tpm_handles handles;
	/* --srk-handle was given: a blob sealed under another SRK is an
	 * error; without it the broker follows the blob's SRK */
	bool srk_explicit;
	/* the OS's PCR policy file (EVE: /persist/status/policy-pcr.json),
	 * "" = off: the vault set comes from it and follows it (pcrfile.c) */
	char     pcr_file[4096];
	unsigned pcr_poll_ms; /* how often it is checked (default 1000) */
};

/* core.c: what serve.c, update.c and escrow.c share. cfg, no_tpm and the
 * paths are set by broker_core_init and read-only after it; the rest is
 * used through the functions below, under the locks named. */

/* One unseal and the requests that share it; allocated in secmem. */
struct broker_round {
	bool     done;
	int      users;  /* requests still to derive from master */
	int      shared; /* requests that used this round */
	int      status; /* enum key_status */
	TSS2_RC  rc;
	uint32_t changed; /* PCRs that differ from seal time */
	char     reason[REASON_LEN];
	uint8_t  master[SEAL_MASTER_LEN];
};

struct topic_pub;
struct req_server;
struct update;

struct broker {
	struct broker_cfg cfg;
	char              sealpath[PATH_LEN];  /* the active blob */
	char              pendpath[PATH_LEN];  /* a planned update's blob */
	char              statepath[PATH_LEN]; /* its boot counter */
	bool              no_tpm;              /* --tcti none */

	pthread_mutex_t         mu; /* cur, st, counters */
	pthread_cond_t          cv;
	struct broker_round    *cur; /* the unseal in flight, or NULL */
	struct keybroker_status st;
	uint64_t                unseals, releases;

	pthread_mutex_t  tpm_mu; /* the TPM: one command stream */
	struct tpm       tpm;
	bool             have_blob;
	struct seal_blob blob;

	struct topic_pub  *pub; /* KeyBrokerStatus */
	struct req_server *srv; /* serve.c: keybroker */
	struct update     *upd; /* update.c: pending update, admin socket */
	struct attest      att; /* attest.c; TPM use under tpm_mu */
	struct pcrwatch   *pw;  /* pcrfile.c, with --pcr-file */
	bool pcrs_from_file;    /* cfg.pcrs came from --pcr-file at start */
	bool srk_explicit;      /* --srk-handle given: never follow the blob */
};

/* Fill b (zeroed here) from cfg, publish KeyBrokerStatus "starting", open
 * the TPM (a missing TPM is not an error). -1 with err; broker_core_fini
 * is safe after any return. */
int  broker_core_init(struct broker *b, const struct broker_cfg *cfg, char *err,
                      size_t errlen);
void broker_core_fini(struct broker *b);
/* One unseal on the TPM now into r (master, status, reason); takes the
 * TPM lock. */
void broker_unseal(struct broker *b, struct broker_round *r);
/* KeyBrokerStatus from a round's result (call with mu held). */
void broker_round_status(struct broker *b, const struct broker_round *r);
/* One unseal now to refresh KeyBrokerStatus (TPM lock not held). -1 when
 * no locked memory is left for the key. */
int broker_recheck(struct broker *b);
/* Counters: unseals done; the status as last published. */
uint64_t broker_unseals(struct broker *b);
void     broker_status(struct broker *b, struct keybroker_status *out);
/* The TPM lock serializes the TPM and the blob in use; the blob functions
 * are called with it held. broker_tpm_lock always takes the lock (unlock
 * it even when it returns NULL: no hardware TPM). */
struct tpm *broker_tpm_lock(struct broker *b);
void        broker_tpm_unlock(struct broker *b);
/* Load (or provision) the active blob unless one is in use. */
int broker_ensure_blob(struct broker *b, TSS2_RC *rc, char *err, size_t errlen);
const struct seal_blob *broker_blob(struct broker *b); /* NULL: none yet */
/* NULL: none in use, the next use loads the active file. */
void broker_set_blob(struct broker *b, const struct seal_blob *blob);
/* Remove the pending blob and update.json (a commit, drop or recovery). */
void broker_drop_pending(struct broker *b);

/* serve.c: the keybroker service. */
/* Opens the TPM (a missing TPM is not an error: status NO_HW_TPM),
 * provisions or checks the sealed master, publishes KeyBrokerStatus and
 * serves KeyRelease. -1 on a setup error (err says what). */
int  broker_open(struct broker **bp, const struct broker_cfg *cfg, char *err,
                 size_t errlen);
void broker_close(struct broker *b);
/* One release, as the request handler does it (tests, bench). */
int broker_release(struct broker *b, const char *uuid, uid_t peer,
                   struct key_release_rep *rep);

/* pcrfile.c: the vault PCR set from the OS's policy file. */
/* EVE's VaultKeyPolicyPCR JSON ({"Indexes": [...], ...}) into a PCR mask,
 * by EVE's rules and ours (0 in, 5 out, 0-15, no duplicates, at most 15).
 * 0 or -1 with err. */
int pcrfile_parse(const char *buf, size_t len, uint32_t *mask, char *err,
                  size_t errlen);
/* The same from a file: 0; 1 when it does not exist; -1 with err. */
int pcrfile_read(const char *path, uint32_t *mask, char *err, size_t errlen);
/* Reseal the master key to the PCRs of mask (unseal under the current
 * policy, seal, prove, store durably). 1 done, 0 already sealed to it,
 * -1 with err (policy does not hold now, an update is pending, ...). */
int broker_reseal(struct broker *b, uint32_t mask, char *err, size_t errlen);
/* A thread that checks path every period_ms and reseals to a new valid
 * set; a bad file is logged and the last good set stays. initial: the
 * set in force; from_file: it came from the file (reseal to it if the
 * blob differs). */
struct pcrwatch;
int  pcrwatch_start(struct pcrwatch **wp, struct broker *b, const char *path,
                    uint32_t initial, bool from_file, unsigned period_ms);
void pcrwatch_stop(struct pcrwatch *w);

/* update.c: planned OS updates. Files in the vault dir: the
 * active blob (master.sealed.json: the committed values), the pending
 * blob (master.pending.json: current OR predicted) and update.json (the
 * pending update's boot counter). */
#define UPDATE_PENDING_FILE  "master.pending.json"
#define UPDATE_STATE_FILE    "update.json"
#define UPDATE_DEFAULT_BOOTS 3

struct update_state {
	int64_t  boots_seen; /* boots on the old values since announce */
	uint32_t last_reset; /* TPM resetCount last seen (a boot = change) */
	int64_t  announced;  /* unix time */
};

/* What a broker start does with a pending update. */
enum update_action {
	UPD_NONE = 0, /* no pending update */
	UPD_COMMIT,   /* PCRs hold the predicted values: reseal to them */
	UPD_KEEP,     /* old values, boots left: keep both branches */
	UPD_DROP,     /* old values, boots used up: drop the pending one */
	UPD_MISMATCH, /* neither: keep everything, releases are refused */
};

/* predict.c: the pure logic (no TPM) */

/* The full predicted set for a blob sealed to mask: the named PCRs take
 * the given values, the others keep their current value cur[i]. Named
 * PCRs outside mask are refused. 0 or -1 with err. */
int update_predicted(uint32_t mask, uint32_t named,
                     const struct pcr_values *given, const uint8_t (*cur)[32],
                     uint8_t (*out)[32], char *err, size_t errlen);
/* The branch of b whose values equal now[] on every PCR of b's set, or
 * -1. */
int update_match(const struct seal_blob *b, const uint8_t (*now)[32]);
/* Decide at a broker start: match = update_match(pending blob, now) and
 * reset_count the TPM's resetCount now. Updates st (boot counting). */
enum update_action update_decide(bool pending, int match,
                                 struct update_state *st, uint32_t reset_count,
                                 int pending_boots);
int update_state_load(const char *path, struct update_state *st, char *err,
                      size_t errlen);
int update_state_store(const char *path, const struct update_state *st);
/* VTPM_TEST_CRASH_AT=step: SIGKILL ourselves at that step (tests only). */
void update_crash_point(const char *step);

/* update.c: the TPM side, the keybroker-admin socket */
struct update;
/* At broker start, before the first check (TPM lock not held): commit,
 * keep or drop a pending update; then serve keybroker-admin. */
int update_open(struct update **up, struct broker *b, char *err, size_t errlen);
void update_close(struct update *u);
/* The request handlers (tests call them directly). */
int update_announce(struct update *u, const struct key_admin_req *rq,
                    struct key_admin_rep *rep);
int update_status(struct update *u, struct key_admin_rep *rep);

/* escrow.c: the broker side of the recovery escrow (off unless
 * --escrow-pubkey); the record format is in keyfmt.h. */
struct escrow;
/* NULL in *ep when escrow is off; writes the record when missing. */
int escrow_open(struct escrow **ep, struct broker *b, char *err, size_t errlen);
void escrow_close(struct escrow *e);
void escrow_fill(struct escrow *e, struct key_admin_rep *rep);
int  escrow_recover_begin(struct escrow *e, struct key_admin_rep *rep);
int  escrow_recover(struct escrow *e, const struct key_admin_req *rq,
                    struct key_admin_rep *rep);

#endif
