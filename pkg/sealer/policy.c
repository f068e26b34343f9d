/* policy.c: the vault PCR set as a TPM selection, reading the PCRs, and
 * the policy digests a sealed blob is made of: PolicyPCR
 * per branch and PolicyOR over two branches (trial sessions). */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

void
seal_pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	sel->pcrSelections[0].pcrSelect[0] = mask & 0xff;
	sel->pcrSelections[0].pcrSelect[1] = (mask >> 8) & 0xff;
	sel->pcrSelections[0].pcrSelect[2] = (mask >> 16) & 0xff;
}

/* ---- PCRs and policies ---- */

int
seal_pcr_read(struct tpm *t, uint32_t mask, uint8_t values[][32], TSS2_RC *rc,
              char *err, size_t errlen)
{
	uint32_t left = mask;
	char     rcs[128];

	while (left != 0) {
		TPML_PCR_SELECTION sel, *out = NULL;
		TPML_DIGEST       *vals = NULL;
		UINT32             upd;
		uint32_t           got;
		int                k = 0;

		seal_pcr_selection(left, &sel);
		TPM_RETRY(*rc,
		          Esys_PCR_Read(t->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
		                        ESYS_TR_NONE, &sel, &upd, &out, &vals));
		if (*rc != TSS2_RC_SUCCESS) {
			snprintf(err, errlen, "PCR_Read sha256: %s",
			         tek_rc_str(*rc, rcs, sizeof(rcs)));
			return -1;
		}
		got = 0;
		if (out->count == 1 &&
		    out->pcrSelections[0].hash == TPM2_ALG_SHA256) {
			const uint8_t *ps = out->pcrSelections[0].pcrSelect;
			got = (uint32_t) ps[0] | (uint32_t) ps[1] << 8 |
			      (uint32_t) ps[2] << 16;
		}
		got &= left;
		for (int i = 0; i < SEAL_PCR_MAX; i++) {
			if (!(got & (1u << i))) {
				continue;
			}
			if (k >= (int) vals->count ||
			    vals->digests[k].size != 32) {
				got = 0;
				break;
			}
			memcpy(values[i], vals->digests[k].buffer, 32);
			k++;
		}
		Esys_Free(out);
		Esys_Free(vals);
		if (got == 0) {
			snprintf(err, errlen,
			         "PCR_Read: the TPM returned no sha256 values "
			         "(is the sha256 bank allocated?)");
			*rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
			return -1;
		}
		left &= ~got;
	}
	return 0;
}

/* pcrDigest for PolicyPCR: sha256 over the values in index order. */
static void
pcr_composite(uint32_t mask, const uint8_t values[][32], TPM2B_DIGEST *d)
{
	EVP_MD_CTX  *c = EVP_MD_CTX_new();
	unsigned int n = 0;

	memset(d, 0, sizeof(*d));
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		if (mask & (1u << i)) {
			EVP_DigestUpdate(c, values[i], 32);
		}
	}
	EVP_DigestFinal_ex(c, d->buffer, &n);
	d->size = (UINT16) n;
	EVP_MD_CTX_free(c);
}

/* A trial session computes the PolicyPCR digest for given values (current
 * or predicted: a planned update's second branch uses the same). */
int
seal_branch_digest(struct tpm *t, struct seal_branch *br, TSS2_RC *rc,
                   char *err, size_t errlen)
{
	TPMT_SYM_DEF       sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR            sess = ESYS_TR_NONE;
	TPML_PCR_SELECTION sel;
	TPM2B_DIGEST       pd, *dig = NULL;
	char               rcs[128];

	seal_pcr_selection(br->mask, &sel);
	pcr_composite(br->mask, (const uint8_t(*)[32]) br->values, &pd);
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL,
	                   &sym, TPM2_ALG_SHA256, &sess));
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "StartAuthSession (trial): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	TPM_RETRY(*rc, Esys_PolicyPCR(t->ectx, sess, ESYS_TR_NONE, ESYS_TR_NONE,
	                              ESYS_TR_NONE, &pd, &sel));
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc, Esys_PolicyGetDigest(t->ectx, sess, ESYS_TR_NONE,
		                                    ESYS_TR_NONE, ESYS_TR_NONE,
		                                    &dig));
	}
	tpm_flush(t, &sess);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyPCR (trial): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	br->digest = *dig;
	Esys_Free(dig);
	return 0;
}

/* The PolicyOR digest over the branches' digests (trial session). */
int
seal_or_digest(struct tpm *t, const struct seal_blob *b, TPM2B_DIGEST *out,
               TSS2_RC *rc, char *err, size_t errlen)
{
	TPMT_SYM_DEF  sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR       sess = ESYS_TR_NONE;
	TPML_DIGEST   list = {.count = (UINT32) b->nbranches};
	TPM2B_DIGEST *dig = NULL;
	char          rcs[128];

	for (int k = 0; k < b->nbranches; k++) {
		list.digests[k] = b->branch[k].digest;
	}
	TPM_RETRY(*rc, Esys_StartAuthSession(
	                   t->ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                   ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL,
	                   &sym, TPM2_ALG_SHA256, &sess));
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc,
		          Esys_PolicyOR(t->ectx, sess, ESYS_TR_NONE,
		                        ESYS_TR_NONE, ESYS_TR_NONE, &list));
	}
	if (*rc == TSS2_RC_SUCCESS) {
		TPM_RETRY(*rc, Esys_PolicyGetDigest(t->ectx, sess, ESYS_TR_NONE,
		                                    ESYS_TR_NONE, ESYS_TR_NONE,
		                                    &dig));
	}
	tpm_flush(t, &sess);
	if (*rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "PolicyOR (trial): %s",
		         tek_rc_str(*rc, rcs, sizeof(rcs)));
		return -1;
	}
	*out = *dig;
	Esys_Free(dig);
	return 0;
}

int
seal_changed_pcrs(struct tpm *t, const struct seal_blob *b, uint32_t *changed,
                  TSS2_RC *rc, char *err, size_t errlen)
{
	uint8_t now[SEAL_PCR_MAX][32];

	*changed = 0;
	if (seal_pcr_read(t, b->mask, now, rc, err, errlen) < 0) {
		return -1;
	}
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		if (!(b->mask & (1u << i))) {
			continue;
		}
		/* changed = matches no branch */
		bool same = false;
		for (int k = 0; k < b->nbranches; k++) {
			if ((b->branch[k].mask & (1u << i)) &&
			    memcmp(now[i], b->branch[k].values[i], 32) == 0) {
				same = true;
			}
		}
		if (!same) {
			*changed |= 1u << i;
		}
	}
	return 0;
}
