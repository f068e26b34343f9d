/* seal.c: sealing the master key under the vault policy, the
 * policy-session unseal, and the sealed-blob file. The PCR set and
 * policy digests are in policy.c, the SRK in srk.c. */
#include "sealer.h"
#include "tpm_ek.h"
#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#define SEAL_FILE_MAX (64 * 1024)

/* Overwrite the command/response buffer ESAPI keeps in its context, so no
 * plaintext key stays there after a Create or Unseal. */
static void
scrub_esys_buffer(struct tpm *t)
{
	TPM2B_DIGEST *r = NULL;
	TSS2_RC       rc;

	TPM_RETRY(rc, Esys_GetRandom(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
	                             ESYS_TR_NONE, 48, &r));
	if (rc == TSS2_RC_SUCCESS) {
		explicit_bzero(r, sizeof(*r));
	}
	Esys_Free(r);
}

/* Overwrite the stack below the caller: ESAPI's parameter encryption
 * works on a stack copy of the command's first parameter (the sensitive
 * data of a Create) and of the response's (the Unseal), and leaves it
 * there. Found by update_escrow.sh's memory scan of the broker. */
__attribute__((noinline)) static void
burn_stack(void)
{
	volatile uint8_t pad[64 * 1024];

	explicit_bzero((void *) pad, sizeof(pad));
}

/* An HMAC or policy session salted with the SRK and AES-128-CFB parameter
 * encryption: the key never crosses the wire to the TPM in clear. */
static int
start_session(struct tpm *t, TPM2_SE type, TPMA_SESSION attrs, bool plain,
              ESYS_TR *s, TSS2_RC *rc, char *err, size_t errlen)
{
	TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES,
	                    .keyBits.aes = 128,
	                    .mode.aes = TPM2_ALG_CFB};
	char         rcs[128];

	*s = ESYS_TR_NONE;
	if (plain) {
		/* bench reference only: unsalted, no parameter encryption */
		sym.algorithm = TPM2_ALG_NULL;
		attrs = 0;
	}
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, plain ? ESYS_TR_NONE : t->srk, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type,
	                   &sym, TPM2_ALG_SHA256, s));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "StartAuthSession (salted by SRK): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		*s = ESYS_TR_NONE;
		return -1;
	}
	*rc = Esys_TRSess_SetAttributes(
	    t->ectx, *s, TPMA_SESSION_CONTINUESESSION | attrs, 0xff);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "TRSess_SetAttributes: %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		tpm_flush(t, s);
		return -1;
	}
	return 0;
}

int
seal_create(struct tpm *t, uint32_t mask, const uint8_t *master,
            struct seal_blob *b, TSS2_RC *rc, char *err, size_t errlen)
{
	return seal_create_or(t, mask, master, NULL, b, rc, err, errlen);
}

int
seal_create_or(struct tpm *t, uint32_t mask, const uint8_t *master,
               const uint8_t (*predicted)[32], struct seal_blob *b, TSS2_RC *rc,
               char *err, size_t errlen)
{
	TPM2B_SENSITIVE_CREATE insens;
	TPM2B_PUBLIC           tmpl;
	TPM2B_DATA             outside = {0};
	TPML_PCR_SELECTION     cpcr = {0};
	TPM2B_PRIVATE         *opriv = NULL;
	TPM2B_PUBLIC          *opub = NULL;
	TPM2B_CREATION_DATA   *cdata = NULL;
	TPM2B_DIGEST          *chash = NULL;
	TPMT_TK_CREATION      *ticket = NULL;
	ESYS_TR                enc = ESYS_TR_NONE;
	char                   rcs[128];

	memset(b, 0, sizeof(*b));
	b->mask = mask;
	b->srk = t->h.srk;
	b->nbranches = 1;
	b->branch[0].mask = mask;
	if (seal_srk(t, rc, err, errlen) < 0 ||
	    seal_pcr_read(t, mask, b->branch[0].values, rc, err, errlen) < 0 ||
	    seal_branch_digest(t, &b->branch[0], rc, err, errlen) < 0) {
		return -1;
	}
	b->auth_policy = b->branch[0].digest;
	if (predicted != NULL) {
		/* second branch: the values a planned update will produce */
		b->nbranches = 2;
		b->branch[1].mask = mask;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			if (mask & (1u << i)) {
				memcpy(b->branch[1].values[i], predicted[i],
				       32);
			}
		}
		if (seal_branch_digest(t, &b->branch[1], rc, err, errlen) < 0 ||
		    seal_or_digest(t, b, &b->auth_policy, rc, err, errlen) <
		        0) {
			return -1;
		}
	}

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	/* no userWithAuth: only the policy can authorize the unseal */
	tmpl.publicArea.objectAttributes =
	    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
	tmpl.publicArea.authPolicy = b->auth_policy;
	tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme =
	    TPM2_ALG_NULL;

	if (start_session(t, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, false, &enc,
	                  rc, err, errlen) < 0) {
		return -1;
	}
	memset(&insens, 0, sizeof(insens));
	insens.sensitive.data.size = SEAL_MASTER_LEN;
	memcpy(insens.sensitive.data.buffer, master, SEAL_MASTER_LEN);
	TPM_RETRY(*rc,
	          Esys_Create(t->ectx, t->srk, ESYS_TR_PASSWORD, enc,
	                      ESYS_TR_NONE, &insens, &tmpl, &outside, &cpcr,
	                      &opriv, &opub, &cdata, &chash, &ticket));
	explicit_bzero(&insens, sizeof(insens));
	tpm_flush(t, &enc);
	scrub_esys_buffer(t);
	burn_stack();
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "Create (sealed master under SRK): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	b->pub = *opub;
	b->priv = *opriv;
	Esys_Free(opriv);
	Esys_Free(opub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	return 0;
}

/* In the policy session sess: PolicyPCR on the values the PCRs hold now,
 * then PolicyOR over b's branches when there are two. 0; -2 when the PCRs
 * match no branch; -1 on other errors. */
static int
policy_now(struct tpm *t, ESYS_TR sess, const struct seal_blob *b, TSS2_RC *rc,
           char *err, size_t errlen)
{
	TPML_PCR_SELECTION sel;
	TPM2B_DIGEST       empty = {0};
	char               rcs[128];
	int                ret = -1;

	/* empty pcrDigest: the TPM takes the PCRs' values now */
	seal_pcr_selection(b->branch[0].mask, &sel);
	TPM_RETRY(*rc, Esys_PolicyPCR(t->ectx, sess, ESYS_TR_NONE, ESYS_TR_NONE,
	                              ESYS_TR_NONE, &empty, &sel));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyPCR: %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return ret;
	}
	if (b->nbranches > 1) {
		/* the current values must be one of the branches */
		TPML_DIGEST list = {.count = (UINT32) b->nbranches};

		for (int k = 0; k < b->nbranches; k++) {
			list.digests[k] = b->branch[k].digest;
		}
		TPM_RETRY(*rc,
		          Esys_PolicyOR(t->ectx, sess, ESYS_TR_NONE,
		                        ESYS_TR_NONE, ESYS_TR_NONE, &list));
		if (*rc != TSS2_RC_SUCCESS) {
			snprintf(err, errlen, "PolicyOR over %d branches: %s",
			         b->nbranches,
			         tek_rc_str(*rc, rcs, sizeof(rcs)));
			if ((*rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
				ret = -2; /* the PCRs match no branch */
			}
			return ret;
		}
	}
	return 0;
}

static int
unseal(struct tpm *t, const struct seal_blob *b, uint8_t *master, bool plain,
       TSS2_RC *rc, char *err, size_t errlen)
{
	ESYS_TR               obj = ESYS_TR_NONE, sess = ESYS_TR_NONE;
	TPM2B_SENSITIVE_DATA *out = NULL;
	char                  rcs[128];
	int                   ret = -1;

	if (b->srk != t->h.srk) {
		*rc = TSS2_RC_SUCCESS;
		snprintf(err, errlen,
		         "the master key is sealed under the SRK at 0x%x, but "
		         "--srk-handle is 0x%x: start the broker with "
		         "--srk-handle 0x%x",
		         b->srk, t->h.srk, b->srk);
		return -1;
	}
	if (seal_srk(t, rc, err, errlen) < 0) {
		return -1;
	}
	TPM_RETRY(*rc,
	          Esys_Load(t->ectx, t->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                    ESYS_TR_NONE, &b->priv, &b->pub, &obj));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(
		    err, errlen, "Load sealed master under SRK 0x%x: %s%s",
		    t->h.srk, tek_rc_str(*rc, rcs, sizeof(rcs)),
		    (*rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER
		        ? " (TPM cleared, or not the TPM it was sealed on?)"
		        : "");
		obj = ESYS_TR_NONE;
		return -1;
	}
	if (start_session(t, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, plain, &sess,
	                  rc, err, errlen) < 0) {
		goto out;
	}
	if ((ret = policy_now(t, sess, b, rc, err, errlen)) < 0) {
		goto out;
	}
	ret = -1;
	TPM_RETRY(*rc, Esys_Unseal(t->ectx, obj, sess, ESYS_TR_NONE,
	                           ESYS_TR_NONE, &out));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "Unseal: %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		if (tpm_rc_is_policy(*rc)) {
			ret = -2;
		}
		goto out;
	}
	if (out->size != SEAL_MASTER_LEN) {
		snprintf(err, errlen, "Unseal: %u bytes, expected %d",
		         (unsigned) out->size, SEAL_MASTER_LEN);
		*rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
		goto out;
	}
	memcpy(master, out->buffer, SEAL_MASTER_LEN);
	ret = 0;
out:
	if (out != NULL) {
		explicit_bzero(out, sizeof(*out));
		Esys_Free(out);
	}
	tpm_flush(t, &sess);
	tpm_flush(t, &obj);
	if (ret == 0 && !plain) {
		scrub_esys_buffer(t);
		burn_stack();
	}
	return ret;
}

int
seal_unseal(struct tpm *t, const struct seal_blob *b, uint8_t *master,
            TSS2_RC *rc, char *err, size_t errlen)
{
	return unseal(t, b, master, false, rc, err, errlen);
}

int
seal_unseal_plain(struct tpm *t, const struct seal_blob *b, uint8_t *master,
                  TSS2_RC *rc, char *err, size_t errlen)
{
	return unseal(t, b, master, true, rc, err, errlen);
}

/* ---- file ---- */

static int
add_hex(cJSON *o, const char *name, const uint8_t *p, size_t n)
{
	char *h = malloc(2 * n + 1);
	int   rc;

	if (h == NULL) {
		return -1;
	}
	hex_encode(p, n, h, 2 * n + 1);
	rc = cJSON_AddStringToObject(o, name, h) ? 0 : -1;
	free(h);
	return rc;
}

int
seal_blob_store(const char *path, const struct seal_blob *b)
{
	uint8_t buf[SEAL_BLOB_MAX];
	size_t  off;
	char    pcrs[PCRS_LEN], srk[16], *txt = NULL;
	cJSON  *o = cJSON_CreateObject(), *arr;
	int     rc = -1;

	snprintf(srk, sizeof(srk), "0x%08x", b->srk);
	pcrset_format(b->mask, pcrs, sizeof(pcrs));
	if (o == NULL || !cJSON_AddNumberToObject(o, "version", 1) ||
	    !cJSON_AddStringToObject(o, "srk", srk) ||
	    !cJSON_AddStringToObject(o, "bank", "sha256") ||
	    !cJSON_AddStringToObject(o, "pcrs", pcrs) ||
	    (arr = cJSON_AddArrayToObject(o, "branches")) == NULL) {
		goto out;
	}
	for (int k = 0; k < b->nbranches; k++) {
		const struct seal_branch *br = &b->branch[k];
		cJSON                    *bo = cJSON_CreateObject(), *vals;

		if (bo == NULL) {
			goto out;
		}
		cJSON_AddItemToArray(arr, bo);
		pcrset_format(br->mask, pcrs, sizeof(pcrs));
		if (!cJSON_AddStringToObject(bo, "pcrs", pcrs) ||
		    (vals = cJSON_AddObjectToObject(bo, "values")) == NULL ||
		    add_hex(bo, "digest", br->digest.buffer, br->digest.size) <
		        0) {
			goto out;
		}
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			char idx[4];
			if (!(br->mask & (1u << i))) {
				continue;
			}
			snprintf(idx, sizeof(idx), "%d", i);
			if (add_hex(vals, idx, br->values[i], 32) < 0) {
				goto out;
			}
		}
	}
	if (add_hex(o, "auth_policy", b->auth_policy.buffer,
	            b->auth_policy.size) < 0) {
		goto out;
	}
	off = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&b->pub, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    add_hex(o, "public", buf, off) < 0) {
		goto out;
	}
	off = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Marshal(&b->priv, buf, sizeof(buf), &off) !=
	        TSS2_RC_SUCCESS ||
	    add_hex(o, "private", buf, off) < 0) {
		goto out;
	}
	if ((txt = cJSON_Print(o)) == NULL) {
		goto out;
	}
	rc = durable_write(path, txt, strlen(txt), 0600);
	if (rc < 0) {
		log_warn("durable_write %s", path);
	}
out:
	free(txt);
	cJSON_Delete(o);
	return rc;
}

/* The file as written: what the schema engine decodes, before the TPM
 * structures are unmarshalled from it. */
struct blob_file_branch {
	char                   pcrs[PCRS_LEN];
	struct pcr_values_seen values;
	uint8_t                digest[sizeof(TPMU_HA)];
	size_t                 digest_len;
};
struct blob_file {
	int64_t                 version;
	char                    srk[16]; /* "0x81000100": tpm_handle_parse */
	int                     bank;
	char                    pcrs[PCRS_LEN];
	struct blob_file_branch branches[SEAL_BRANCHES_MAX];
	int                     nbranches;
	uint8_t                 auth_policy[sizeof(TPMU_HA)];
	size_t                  auth_policy_len;
	uint8_t public[SEAL_BLOB_MAX];
	size_t public_len;
	uint8_t private[SEAL_BLOB_MAX];
	size_t private_len;
};

static const char *const banks[] = {"sha256", NULL};

static const struct field blob_branch_fields[] = {
    FSTR(struct blob_file_branch, pcrs, FF_REQUIRED),
    {.name = "values",
     .kind = FK_OBJECT,
     .offset = offsetof(struct blob_file_branch, values),
     .size = sizeof(struct pcr_values_seen),
     .flags = FF_REQUIRED,
     .sub = &pcr_values_seen_schema},
    FHEXVAR(struct blob_file_branch, digest, digest_len, FF_REQUIRED, 1),
};
static const struct schema blob_branch_schema =
    SCHEMA("branch", MSG_NONE, struct blob_file_branch, blob_branch_fields);

static const struct field blob_fields[] = {
    FINT(struct blob_file, version, FF_REQUIRED, 1, 1),
    FSTR(struct blob_file, srk, FF_REQUIRED),
    FENUM(struct blob_file, bank, FF_REQUIRED, banks, 0),
    FSTR(struct blob_file, pcrs, FF_REQUIRED),
    FARRAY(struct blob_file, branches, nbranches, FF_REQUIRED, 1,
           &blob_branch_schema),
    FHEXVAR(struct blob_file, auth_policy, auth_policy_len, FF_REQUIRED, 1),
    FHEXVAR(struct blob_file, public, public_len, FF_REQUIRED, 1),
    FHEXVAR(struct blob_file, private, private_len, FF_REQUIRED, 1),
};
static const struct schema blob_schema =
    SCHEMA("sealed blob", MSG_NONE, struct blob_file, blob_fields);

/* What the schema cannot say: PCR sets, a value for every PCR a branch
 * names, TPM structures that unmarshal whole, the policy they carry. */
static int
blob_from_file(const char *path, const struct blob_file *f, struct seal_blob *b,
               char *err, size_t errlen)
{
	char   perr[REASON_LEN];
	size_t off = 0;

	if (tpm_handle_parse(f->srk, &b->srk, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s: field srk: %s", path, perr);
		return -1;
	}
	if (pcrset_parse(f->pcrs, &b->mask, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s: field pcrs: %s", path, perr);
		return -1;
	}
	for (int k = 0; k < f->nbranches; k++) {
		const struct blob_file_branch *fb = &f->branches[k];
		struct seal_branch            *sb = &b->branch[k];

		if (pcrset_parse(fb->pcrs, &sb->mask, perr, sizeof(perr)) < 0) {
			snprintf(err, errlen, "%s: field branches[%d].pcrs: %s",
			         path, k, perr);
			return -1;
		}
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			if ((sb->mask & (1u << i)) &&
			    !(fb->values.seen & (1u << i))) {
				snprintf(
				    err, errlen,
				    "%s: field branches[%d].values: value of "
				    "PCR %d missing",
				    path, k, i);
				return -1;
			}
		}
		memcpy(sb->values, fb->values.values.v, sizeof(sb->values));
		memcpy(sb->digest.buffer, fb->digest, fb->digest_len);
		sb->digest.size = (UINT16) fb->digest_len;
	}
	b->nbranches = f->nbranches;
	memcpy(b->auth_policy.buffer, f->auth_policy, f->auth_policy_len);
	b->auth_policy.size = (UINT16) f->auth_policy_len;
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(f->public, f->public_len, &off,
	                                   &b->pub) != TSS2_RC_SUCCESS ||
	    off != f->public_len) {
		snprintf(err, errlen, "%s: field public: not a TPM2B_PUBLIC",
		         path);
		return -1;
	}
	off = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(f->private, f->private_len, &off,
	                                    &b->priv) != TSS2_RC_SUCCESS ||
	    off != f->private_len) {
		snprintf(err, errlen, "%s: field private: not a TPM2B_PRIVATE",
		         path);
		return -1;
	}
	if (b->pub.publicArea.authPolicy.size != b->auth_policy.size ||
	    memcmp(b->pub.publicArea.authPolicy.buffer, b->auth_policy.buffer,
	           b->auth_policy.size) != 0) {
		snprintf(err, errlen,
		         "%s: field auth_policy: does not match the sealed "
		         "object's",
		         path);
		return -1;
	}
	return 0;
}

int
seal_blob_load(const char *path, struct seal_blob *b, char *err, size_t errlen)
{
	struct blob_file *f = calloc(1, sizeof(*f));
	int               rc = -1;

	memset(b, 0, sizeof(*b));
	if (f == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (schema_load_file(path, SEAL_FILE_MAX, &blob_schema, f, err,
	                     errlen) == 0 &&
	    blob_from_file(path, f, b, err, errlen) == 0) {
		rc = 0;
	}
	if (rc < 0) {
		memset(b, 0, sizeof(*b));
	}
	free(f);
	return rc;
}
