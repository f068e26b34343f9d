/*
 * msg.h: the message vocabulary, in one table.
 *
 * Every message is JSON {"type": NAME, "version": 1, ...fields}. Fields are
 * decoded into the C structs below by a declarative schema (schema.c), never
 * by hand: unknown fields, wrong types, missing required fields, over-long
 * strings, bad UUIDs and messages over MSG_MAX are rejected with a reason.
 * Topic items travel inside a topic envelope (see topic.c, docs/messages.md).
 */
#ifndef VTPM_MSG_H
#define VTPM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MSG_VERSION      1
#define MSG_MAX          (64 * 1024) /* any single message or item */
#define MSG_SNAPSHOT_MAX (16 << 20)  /* a whole topic snapshot */
#define UUID_LEN         37          /* 36 chars + NUL */
#define NAME_LEN         65
#define REASON_LEN       257
#define SOCK_LEN         108 /* sun_path */
#define STATE_DIR_LEN    512
#define PCRS_LEN         64 /* "0,1,2,3,4,6,7,8,9,10,11,12,13,14" */
#define KEY_LEN          32 /* AES-256 */
/* Largest integer a message may carry: cJSON prints numbers with 15
 * significant digits, so larger ones would not survive a round trip. */
#define MSG_INT_MAX 999999999999999LL

/* Message types. Numbers are stable; names are what goes on the wire. */
enum msg_type {
	MSG_NONE = 0,
	MSG_DOMAIN_STATUS = 1,     /* topic item: DomainStatus */
	MSG_VTPM_STATUS = 2,       /* topic item: VtpmStatus */
	MSG_VTPM_STATE_HEALTH = 3, /* topic item: VtpmStateHealth */
	MSG_KEYBROKER_STATUS = 4,  /* topic item: KeyBrokerStatus */
	MSG_KEY_RELEASE_REQ = 5,   /* launcher -> broker: KeyRelease */
	MSG_KEY_RELEASE_REP = 6,   /* broker -> launcher: KeyReleaseReply */
	MSG_GUARDIAN_REQ = 7, /* launcher/ctl -> guardian: GuardianRequest */
	MSG_GUARDIAN_REP = 8, /* guardian -> requester: GuardianReply */
	MSG_ERROR_REP = 9,    /* any server: Error {reason} */
	MSG_ATTEST_REQ = 10,  /* launcher/ctl -> broker: AttestRequest */
	MSG_ATTEST_REP = 11,  /* broker -> requester: AttestReply */
	/* 20-29: planned updates and key escrow, keybroker-admin */
	MSG_KEY_ADMIN_REQ = 20, /* update agent/ctl -> broker: KeyAdmin */
	MSG_KEY_ADMIN_REP = 21, /* broker -> requester: KeyAdminReply */
	MSG_TYPE_COUNT
};

/* DomainStatus.state */
enum dom_state {
	DOM_CREATING = 0,
	DOM_BOOTING,
	DOM_RUNNING,
	DOM_HALTING,
	DOM_HALTED,
	DOM_DELETED,
};
enum vtpm_model { VTPM_MODEL_TIS = 0, VTPM_MODEL_CRB };
enum vtpm_mode { VTPM_MODE_PERSISTENT = 0, VTPM_MODE_EPHEMERAL };
/* vtpm.ek: what a new persistent vTPM gets. "none" (or false): nothing;
 * "cert" (or true, the default): the RSA (L-1) and ECC P-256 (L-2) EKs
 * certified into NV 0x01c00002 / 0x01c0000a, the EKs flushed (a guest's
 * tpm2_createek makes the certified key again); "persist": the same, and
 * the RSA EK persisted at 0x81010001. */
enum vtpm_ek { VTPM_EK_NONE = 0, VTPM_EK_CERT, VTPM_EK_PERSIST };

/* vtpm {enabled, version, model, mode}: the per-app vTPM settings */
struct vtpm_spec {
	bool enabled;    /* default true */
	char version[8]; /* "2.0" (1.2 is rejected by the config parser) */
	int  model;      /* enum vtpm_model */
	int  mode;       /* enum vtpm_mode */
	int  ek; /* enum vtpm_ek: EK certificates at creation (default cert) */
};

/* DomainStatus {uuid, name, state, vtpm{...}, reason} */
struct domain_status {
	char             uuid[UUID_LEN];
	char             name[NAME_LEN];
	int              state; /* enum dom_state */
	struct vtpm_spec vtpm;
	char             reason[REASON_LEN];
};

/* VtpmStatus.state */
enum vtpm_state { VTPM_STARTING = 0, VTPM_READY, VTPM_FAILED, VTPM_STOPPED };

/* VtpmStatus {uuid, name, state, model, mode, ctrl_socket, pid, health,
 * encrypted, reason} */
struct vtpm_status {
	char    uuid[UUID_LEN];
	char    name[NAME_LEN];
	int     state; /* enum vtpm_state */
	int     model; /* enum vtpm_model */
	int     mode;  /* enum vtpm_mode */
	char    ctrl_socket[SOCK_LEN];
	int64_t pid;
	int     health; /* enum state_class: how the state was found */
	bool    encrypted;
	char    reason[REASON_LEN];
};

/* How a state directory was found / what was done to it. */
enum state_class {
	STATE_NEW = 0,  /* fresh directory, no state yet */
	STATE_NORMAL,   /* current generation verified */
	STATE_RESTORED, /* current bad, backup put back */
	STATE_RESET,    /* both bad: fresh state, old kept in quarantine */
	STATE_MISSING,  /* manifest says state existed, files are gone */
	STATE_PURGED,   /* removed on delete */
	STATE_ERROR,    /* could not be checked (I/O, disk full...) */
	STATE_UNKNOWN,  /* not (yet) classified */
};

/* VtpmStateHealth {uuid, classification, generation, last_backup, reason} */
struct vtpm_state_health {
	char    uuid[UUID_LEN];
	int     classification; /* enum state_class */
	int64_t generation;     /* count of state generations seen */
	int64_t last_backup;    /* unix time (s) of the newest durable backup */
	char    reason[REASON_LEN];
};

/* KeyBrokerStatus.state */
enum kb_state {
	KB_STARTING = 0,
	KB_READY,
	KB_NO_HW_TPM,
	KB_POLICY_MISMATCH,
	KB_ERROR,
};

/* KeyBrokerStatus {uuid (the device), state, pcrs, changed_pcrs, rc, reason}
 * Keyed by a fixed UUID: the broker publishes one item. */
struct keybroker_status {
	char    uuid[UUID_LEN];
	int     state;                  /* enum kb_state */
	char    pcrs[PCRS_LEN];         /* vault PCR set sealed to, "0,1,..." */
	char    changed_pcrs[PCRS_LEN]; /* PCRs that differ from seal time */
	int64_t rc;                     /* last TPM return code, 0 if none */
	char    reason[REASON_LEN];
};
#define KEYBROKER_STATUS_KEY "00000000-0000-0000-0000-000000000000"

/* KeyRelease {uuid} */
struct key_release_req {
	char uuid[UUID_LEN];
};

/* KeyReleaseReply.status */
enum key_status {
	KEY_OK = 0,
	KEY_NO_HW_TPM,
	KEY_POLICY_MISMATCH,
	KEY_ERROR,
	KEY_DENIED,
};

/* KeyReleaseReply {uuid, status, key (hex, only with ok), reason}.
 * Holders must explicit_bzero() the struct and every buffer that held it. */
struct key_release_rep {
	char    uuid[UUID_LEN];
	int     status; /* enum key_status */
	uint8_t key[KEY_LEN];
	char    reason[REASON_LEN];
};

enum guardian_op {
	GOP_PREPARE = 0, /* create or verify+classify; start watching */
	GOP_RESTORE,     /* swtpm rejected the state: put the backup back */
	GOP_RESET,       /* give up: fresh state, old files to quarantine */
	GOP_RELEASE,     /* VM halted: commit last generation, stop watching */
	GOP_PURGE,       /* VM deleted: remove everything */
	GOP_QUERY,       /* report classification without changing anything */
};

/* GuardianRequest {op, uuid, mode, encrypted} */
struct guardian_req {
	int  op; /* enum guardian_op */
	char uuid[UUID_LEN];
	int  mode;      /* enum vtpm_mode */
	bool encrypted; /* the state will be written encrypted */
};

/* GuardianReply {uuid, ok, classification, state_dir, encrypted, generation,
 * reason} */
struct guardian_rep {
	char    uuid[UUID_LEN];
	bool    ok;
	int     classification; /* enum state_class */
	char    state_dir[STATE_DIR_LEN];
	bool    encrypted; /* the state on disk was written encrypted */
	int64_t generation;
	char    reason[REASON_LEN];
};

/* Sixteen sha256 PCR values; wire form {"0": hex, ..., "15": hex}, only
 * those named in the message's pcrs are meaningful. */
struct pcr_values {
	uint8_t v[16][32];
};

/* AttestRequest.op */
enum attest_op {
	AOP_INFO = 0,    /* the device: hardware EK, AK public, AK cert */
	AOP_ACTIVATE,    /* ActivateCredential on a verifier's challenge */
	AOP_SET_AK_CERT, /* store the AK certificate the verifier issued */
	AOP_CERTIFY_EK,  /* issue an X.509 certificate for a vTPM EK */
	AOP_QUOTE,       /* TPM2_Quote by the AK over the vault PCRs */
};
#define ATTEST_PUB_LEN   2048 /* hex of a marshalled TPM2B_PUBLIC */
#define ATTEST_BLOB_LEN  1024 /* hex of TPM2B_ID_OBJECT / ENCRYPTED_SECRET */
#define ATTEST_PEM_LEN   4096 /* one PEM certificate */
#define ATTEST_ID_LEN    80   /* device identity: hex of the AK name */
#define ATTEST_NONCE_LEN 129  /* hex of a quote nonce, up to 64 bytes */
#define ATTEST_QUOTE_LEN 1024 /* hex of a TPMS_ATTEST (quote) */
#define ATTEST_SIG_LEN   1024 /* hex of an RSASSA signature */

/* AttestRequest {op, uuid (the VM for certify-ek; the zero UUID for
 * device ops), ek_pub, credential_blob, secret, ak_cert, nonce} */
struct attest_req {
	int  op; /* enum attest_op */
	char uuid[UUID_LEN];
	char ek_pub[ATTEST_PUB_LEN];           /* certify-ek: the vTPM EK */
	char credential_blob[ATTEST_BLOB_LEN]; /* activate */
	char secret[ATTEST_BLOB_LEN];          /* activate */
	char ak_cert[ATTEST_PEM_LEN];          /* set-ak-cert */
	char nonce[ATTEST_NONCE_LEN];          /* quote: verifier's, hex */
};

/* AttestReply {uuid, ok, device_id, ek_pub, ak_pub, ak_cert, credential,
 * ek_cert, hw_ek_cert, hw_ek_cert_ecc, pcrs, values{...}, quote,
 * signature, reason} */
struct attest_rep {
	char uuid[UUID_LEN];
	bool ok;
	char device_id[ATTEST_ID_LEN];    /* hex AK name */
	char ek_pub[ATTEST_PUB_LEN];      /* info: hardware EK (hex TPM2B) */
	char ak_pub[ATTEST_PUB_LEN];      /* info: AK (hex TPM2B_PUBLIC) */
	char ak_cert[ATTEST_PEM_LEN];     /* info: stored AK certificate */
	char credential[ATTEST_BLOB_LEN]; /* activate: recovered secret, hex */
	char ek_cert[ATTEST_PEM_LEN];     /* certify-ek: the new certificate */
	/* info: the hardware TPM's own EK certificates (maker CA), PEM */
	char hw_ek_cert[ATTEST_PEM_LEN];     /* NV 0x01c00002 (RSA) */
	char hw_ek_cert_ecc[ATTEST_PEM_LEN]; /* NV 0x01c0000a (ECC) */
	/* info, quote: the vault PCR set and its sha256 values now */
	char              pcrs[PCRS_LEN];
	struct pcr_values values;
	char              quote[ATTEST_QUOTE_LEN]; /* quote: TPMS_ATTEST, hex */
	char signature[ATTEST_SIG_LEN]; /* quote: AK RSASSA-SHA256, hex */
	char reason[REASON_LEN];
};

/* Error {reason}: a server could not decode or serve a request */
struct error_rep {
	char reason[REASON_LEN];
};

/* KeyAdmin.op (service keybroker-admin, root only) */
enum key_admin_op {
	KOP_STATUS = 0,    /* sealed policy, pending update, escrow */
	KOP_ANNOUNCE,      /* planned update: reseal to current OR predicted */
	KOP_RECOVER_BEGIN, /* escrow recovery: a fresh device transport key */
	KOP_RECOVER,       /* escrow recovery: import the re-wrapped master */
};

/* The same object in a file, with the indexes it named: bit i of seen is
 * set when "i" was present (a PCR value may be all zeros). */
struct pcr_values_seen {
	struct pcr_values values;
	uint32_t          seen;
};

/* KeyAdmin {op, pcrs, values{...}, data}
 * announce: pcrs + values = the predicted values of the new image.
 * recover: data = the master re-wrapped (hex) to the transport key. */
struct key_admin_req {
	int               op; /* enum key_admin_op */
	char              pcrs[PCRS_LEN];
	struct pcr_values values;
	char              data[1024];
};

/* KeyAdminReply.escrow */
enum escrow_state { ESCROW_OFF = 0, ESCROW_STORED, ESCROW_MISSING };

/* KeyAdminReply {status, reason, pcrs, branches, digest0, digest1, matches,
 * changed_pcrs, pending, boots_seen, pending_boots, escrow, escrow_key,
 * data} */
struct key_admin_rep {
	int     status; /* enum key_status */
	char    reason[REASON_LEN];
	char    pcrs[PCRS_LEN]; /* PCR set sealed to */
	int64_t branches;       /* policy branches of the blob in use (1, 2) */
	uint8_t digest0[32];    /* PolicyPCR digest of branch 0 (current) */
	uint8_t digest1[32];    /* of branch 1 (predicted), when 2 */
	int64_t matches;        /* branch the PCRs match now, -1 none */
	char    changed_pcrs[PCRS_LEN]; /* PCRs matching no branch */
	bool    pending;                /* an announced update is pending */
	int64_t boots_seen;     /* boots on the old values since announce */
	int64_t pending_boots;  /* boots after which it is dropped */
	int     escrow;         /* enum escrow_state */
	char    escrow_key[65]; /* sha256 of the controller key (DER) */
	char    data[1024];     /* recover-begin: transport public key PEM */
};

/* ---- schema engine (schema.c) ---- */

enum field_kind {
	FK_STRING,   /* char[size], size includes NUL */
	FK_UUID,     /* char[UUID_LEN], validated */
	FK_INT,      /* int64_t in [min, max] */
	FK_INT32,    /* int in [min, max] */
	FK_BOOL,     /* bool */
	FK_ENUM,     /* int, wire form is one of enum_names */
	FK_OBJECT,   /* nested struct described by sub */
	FK_HEXBYTES, /* uint8_t[size], wire form is 2*size hex digits */
	FK_HEXVAR,   /* uint8_t[size] and a size_t count at len_offset: min to
	                size bytes, wire form is twice as many hex digits */
	FK_ARRAY,    /* size / sub->size elements of sub and an int count at
	                len_offset; at least min of them */
};

#define FF_REQUIRED   0x1  /* absent -> reject */
#define FF_OMIT_EMPTY 0x2  /* encoder skips it when empty/zero */
#define FF_SECRET     0x4  /* wiped from intermediate buffers */
#define FF_NULLABLE   0x8  /* FK_OBJECT: JSON null counts as absent */
#define FF_BOOL_ALIAS 0x10 /* FK_ENUM: false/true also mean values 0/1 */

struct schema;
struct field {
	const char          *name;
	enum field_kind      kind;
	size_t               offset;
	size_t               size;
	unsigned             flags;
	int64_t              min, max;   /* FK_INT, FK_INT32 */
	int64_t              def;        /* default for INT/INT32/BOOL/ENUM */
	const char          *defstr;     /* default for STRING */
	const char *const   *enum_names; /* FK_ENUM, NULL-terminated */
	const struct schema *sub;        /* FK_OBJECT, FK_ARRAY element */
	size_t               len_offset; /* FK_HEXVAR, FK_ARRAY: the count */
};

struct schema {
	const char         *name; /* wire type name, e.g. "VtpmStatus" */
	enum msg_type       type;
	size_t              size; /* sizeof the struct */
	const struct field *fields;
	size_t              nfields;
	/* 0, or 1 + the offset of a uint32_t in the struct where the decoder
	 * sets bit i when fields[i] was present (an optional field whose
	 * absence the caller must tell from a zero value) */
	size_t seen_at;
};

/* Field table entries, for the message tables in schema.c and for the
 * file formats the daemons decode with the same engine. */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define FSTR(st, f, fl)                                                        \
	{                                                                      \
		.name = #f, .kind = FK_STRING, .offset = offsetof(st, f),      \
		.size = sizeof(((st *) 0)->f), .flags = (fl)                   \
	}
#define FUUID(st, f, fl)                                                       \
	{                                                                      \
		.name = #f, .kind = FK_UUID, .offset = offsetof(st, f),        \
		.size = sizeof(((st *) 0)->f), .flags = (fl)                   \
	}
#define FINT(st, f, fl, lo, hi)                                                \
	{                                                                      \
		.name = #f, .kind = FK_INT, .offset = offsetof(st, f),         \
		.size = sizeof(int64_t), .flags = (fl), .min = (lo),           \
		.max = (hi)                                                    \
	}
#define FBOOL(st, f, fl, d)                                                    \
	{                                                                      \
		.name = #f, .kind = FK_BOOL, .offset = offsetof(st, f),        \
		.size = sizeof(bool), .flags = (fl), .def = (d)                \
	}
#define FENUM(st, f, fl, names, d)                                             \
	{                                                                      \
		.name = #f, .kind = FK_ENUM, .offset = offsetof(st, f),        \
		.size = sizeof(int), .flags = (fl), .enum_names = (names),     \
		.def = (d)                                                     \
	}
#define FHEX(st, f, fl)                                                        \
	{                                                                      \
		.name = #f, .kind = FK_HEXBYTES, .offset = offsetof(st, f),    \
		.size = sizeof(((st *) 0)->f), .flags = (fl)                   \
	}
/* bytes f with their count in the size_t n, at least lo of them */
#define FHEXVAR(st, f, n, fl, lo)                                              \
	{                                                                      \
		.name = #f, .kind = FK_HEXVAR, .offset = offsetof(st, f),      \
		.size = sizeof(((st *) 0)->f), .flags = (fl), .min = (lo),     \
		.len_offset = offsetof(st, n)                                  \
	}
#define FOBJ(st, f, fl, subschema)                                             \
	{                                                                      \
		.name = #f, .kind = FK_OBJECT, .offset = offsetof(st, f),      \
		.size = sizeof(((st *) 0)->f), .flags = (fl),                  \
		.sub = (subschema)                                             \
	}
/* the array f of elements described by subschema, their count in the int
 * n, at least lo of them */
#define FARRAY(st, f, n, fl, lo, subschema)                                    \
	{                                                                      \
		.name = #f, .kind = FK_ARRAY, .offset = offsetof(st, f),       \
		.size = sizeof(((st *) 0)->f), .flags = (fl), .min = (lo),     \
		.sub = (subschema), .len_offset = offsetof(st, n)              \
	}
#define SCHEMA(nm, ty, st, tbl)                                                \
	{                                                                      \
		.name = nm, .type = ty, .size = sizeof(st), .fields = tbl,     \
		.nfields = NELEM(tbl)                                          \
	}

struct cJSON;

/* schema.c */
const struct schema *msg_schema(enum msg_type type);
const struct schema *msg_schema_by_name(const char *name);
/* The largest struct the table declares: a buffer of this size holds a
 * decoded message of any type (msg_decode with MSG_NONE). */
size_t      msg_max_size(void);
const char *msg_type_name(enum msg_type type);
/* Fill out (of schema->size) from a cJSON object, defaults first. On error
 * returns -1 with a reason naming the field in err; out is then zeroed. */
int schema_decode(const struct schema *s, const struct cJSON *obj, void *out,
                  char *err, size_t errlen);
/* The same without the scratch copy; prefix ("vtpm.") names nested fields
 * in errors. out must already hold the defaults. */
int schema_decode_prefixed(const struct schema *s, const struct cJSON *obj,
                           void *out, const char *prefix, char *err,
                           size_t errlen);
/* Build a cJSON object from a struct; NULL on allocation failure. */
struct cJSON *schema_encode(const struct schema *s, const void *in);
/* Wipe FF_SECRET string values inside a cJSON tree before it is freed. */
void schema_wipe_json(const struct schema *s, struct cJSON *obj);
/* The {"0": 64 hex, ..., "15": 64 hex} object of struct pcr_values_seen. */
extern const struct schema pcr_values_seen_schema;
/* File formats through the same engine: parse len bytes of JSON and
 * decode them with s into out; errors start with what (the file's path),
 * then name the field. 0, or -1 with err filled and out zeroed. */
int schema_decode_json(const char *what, const char *json, size_t len,
                       const struct schema *s, void *out, char *err,
                       size_t errlen);
/* Write in as the JSON of s to path with durable_write (mode): the same
 * table describes a file both ways. 0, or -1 with errno. */
int schema_store_file(const char *path, const struct schema *s, const void *in,
                      mode_t mode);
/* Read the file at path (at most max bytes) and schema_decode_json it. */
int schema_load_file(const char *path, size_t max, const struct schema *s,
                     void *out, char *err, size_t errlen);

/* msg.c: whole messages {type, version, ...fields} */
/* Parse JSON text as every pubsub decoder does: a NUL anywhere (raw, or
 * the escape \u0000 in a string or key) is refused, since cJSON would
 * hand the string out cut at it. NULL with err filled, or the tree. */
struct cJSON *msg_json_parse(const void *buf, size_t len, char *err,
                             size_t errlen);
/* Decode buf (len bytes, need not be NUL-terminated). Sets *type and fills
 * out, which must be at least msg_schema(expect)->size bytes. When expect is
 * not MSG_NONE any other type is rejected. 0, or -1 with err filled. */
int msg_decode(const void *buf, size_t len, enum msg_type expect,
               enum msg_type *type, void *out, char *err, size_t errlen);
/* Encode to a malloc'd NUL-terminated JSON string; caller frees (with
 * msg_free_wipe for messages holding secrets). NULL on failure. */
char *msg_encode(enum msg_type type, const void *in);
void  msg_free_wipe(char *s);

/* enum names for logs and vtpmctl */
const char *dom_state_name(int v);
const char *vtpm_state_name(int v);
const char *vtpm_model_name(int v);
const char *vtpm_mode_name(int v);
const char *state_class_name(int v);
/* the wire names of enum state_class, NULL-terminated (for file schemas) */
extern const char *const state_class_names[];
const char              *kb_state_name(int v);
const char              *key_status_name(int v);
const char              *guardian_op_name(int v);
const char              *key_admin_op_name(int v);
const char              *escrow_state_name(int v);
const char              *attest_op_name(int v);

#endif
