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
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
		*s = ESYS_TR_NONE;
		return -1;
	}
	*rc = Esys_TRSess_SetAttributes(
	    t->ectx, *s, TPMA_SESSION_CONTINUESESSION | attrs, 0xff);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "TRSess_SetAttributes: %s",
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
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
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
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
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
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
			         tpm_rc_str(*rc, rcs, sizeof(rcs)));
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

	if (seal_srk(t, rc, err, errlen) < 0) {
		return -1;
	}
	TPM_RETRY(*rc,
	          Esys_Load(t->ectx, t->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE,
	                    ESYS_TR_NONE, &b->priv, &b->pub, &obj));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(
		    err, errlen, "Load sealed master under SRK 0x%x: %s%s",
		    SEAL_SRK_HANDLE, tpm_rc_str(*rc, rcs, sizeof(rcs)),
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
		         tpm_rc_str(*rc, rcs, sizeof(rcs)));
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

/* tek_unhex with the length in an out-parameter, as the parser wants it */
static int
unhex(const char *s, uint8_t *dst, size_t max, size_t *n)
{
	int len = tek_unhex(s, dst, max);

	if (len < 0) {
		return -1;
	}
	*n = (size_t) len;
	return 0;
}

static int
add_hex(cJSON *o, const char *name, const uint8_t *p, size_t n)
{
	char *h = malloc(2 * n + 1);
	int   rc;

	if (h == NULL) {
		return -1;
	}
	tek_hex(p, n, h, 2 * n + 1);
	rc = cJSON_AddStringToObject(o, name, h) ? 0 : -1;
	free(h);
	return rc;
}

int
seal_blob_store(const char *path, const struct seal_blob *b)
{
	uint8_t buf[SEAL_BLOB_MAX];
	size_t  off;
	char    pcrs[PCRS_LEN], *txt = NULL;
	cJSON  *o = cJSON_CreateObject(), *arr;
	int     rc = -1;

	pcrset_format(b->mask, pcrs, sizeof(pcrs));
	if (o == NULL || !cJSON_AddNumberToObject(o, "version", 1) ||
	    !cJSON_AddStringToObject(o, "srk", "0x81000001") ||
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

static const char *
jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
seal_blob_load(const char *path, struct seal_blob *b, char *err, size_t errlen)
{
	char        *txt = NULL;
	size_t       len, n, off;
	cJSON       *o = NULL;
	const cJSON *arr, *br;
	const char  *s;
	uint8_t      buf[SEAL_BLOB_MAX];
	char         perr[REASON_LEN];
	int          rc = -1;

	memset(b, 0, sizeof(*b));
	if (read_file(path, SEAL_FILE_MAX, &txt, &len) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((o = cJSON_ParseWithLength(txt, len)) == NULL) {
		snprintf(err, errlen, "%s: not JSON", path);
		goto out;
	}
	if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "version")) ||
	    cJSON_GetObjectItemCaseSensitive(o, "version")->valuedouble != 1) {
		snprintf(err, errlen, "%s: unsupported version", path);
		goto out;
	}
	if ((s = jstr(o, "bank")) == NULL || strcmp(s, "sha256") != 0) {
		snprintf(err, errlen, "%s: bank is not sha256", path);
		goto out;
	}
	if ((s = jstr(o, "pcrs")) == NULL ||
	    pcrset_parse(s, &b->mask, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s: pcrs: %s", path,
		         s ? perr : "missing");
		goto out;
	}
	arr = cJSON_GetObjectItemCaseSensitive(o, "branches");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
	    cJSON_GetArraySize(arr) > SEAL_BRANCHES_MAX) {
		snprintf(err, errlen, "%s: branches: expected 1 or %d", path,
		         SEAL_BRANCHES_MAX);
		goto out;
	}
	cJSON_ArrayForEach(br, arr)
	{
		struct seal_branch *sb = &b->branch[b->nbranches];
		const cJSON        *vals =
		    cJSON_GetObjectItemCaseSensitive(br, "values");

		if ((s = jstr(br, "pcrs")) == NULL ||
		    pcrset_parse(s, &sb->mask, perr, sizeof(perr)) < 0 ||
		    !cJSON_IsObject(vals) || (s = jstr(br, "digest")) == NULL ||
		    unhex(s, sb->digest.buffer, sizeof(sb->digest.buffer), &n) <
		        0) {
			snprintf(err, errlen, "%s: branch %d is malformed",
			         path, b->nbranches);
			goto out;
		}
		sb->digest.size = (UINT16) n;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			char idx[4];
			if (!(sb->mask & (1u << i))) {
				continue;
			}
			snprintf(idx, sizeof(idx), "%d", i);
			if ((s = jstr(vals, idx)) == NULL ||
			    unhex(s, sb->values[i], 32, &n) < 0 || n != 32) {
				snprintf(
				    err, errlen,
				    "%s: branch %d: value of PCR %d missing",
				    path, b->nbranches, i);
				goto out;
			}
		}
		b->nbranches++;
	}
	if ((s = jstr(o, "auth_policy")) == NULL ||
	    unhex(s, b->auth_policy.buffer, sizeof(b->auth_policy.buffer), &n) <
	        0) {
		snprintf(err, errlen, "%s: auth_policy is malformed", path);
		goto out;
	}
	b->auth_policy.size = (UINT16) n;
	off = 0;
	if ((s = jstr(o, "public")) == NULL ||
	    unhex(s, buf, sizeof(buf), &n) < 0 ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, n, &off, &b->pub) !=
	        TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "%s: public is malformed", path);
		goto out;
	}
	off = 0;
	if ((s = jstr(o, "private")) == NULL ||
	    unhex(s, buf, sizeof(buf), &n) < 0 ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, n, &off, &b->priv) !=
	        TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "%s: private is malformed", path);
		goto out;
	}
	if (b->pub.publicArea.authPolicy.size != b->auth_policy.size ||
	    memcmp(b->pub.publicArea.authPolicy.buffer, b->auth_policy.buffer,
	           b->auth_policy.size) != 0) {
		snprintf(err, errlen,
		         "%s: auth_policy does not match the sealed object's",
		         path);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	free(txt);
	return rc;
}
