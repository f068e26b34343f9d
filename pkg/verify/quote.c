/*
 * quote.c: a device's TPM2_Quote, checked: the AK's RSASSA-SHA256
 * signature over the TPMS_ATTEST, TPM_GENERATED magic and the quote
 * type, the verifier's nonce as extraData, the sha256 PCR selection and
 * its digest over the reported values; then those values against the
 * device's reference (which PCRs differ). Also the {"0": hex, ...} form
 * of PCR values that reports, references and vtpmctl attest use.
 */
#include "verify.h"
#include "common.h"
#include "keyfmt.h"
#include "tpm_ek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

int
vfy_pcrs_parse(const cJSON *o, uint32_t *mask, uint8_t values[16][32],
               char *err, size_t errlen)
{
	const cJSON *v;

	*mask = 0;
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "PCR values: not a JSON object");
		return -1;
	}
	cJSON_ArrayForEach(v, o)
	{
		char *end;
		long  i = strtol(v->string, &end, 10);

		if (*v->string == '\0' || *end != '\0' || i < 0 || i > 15) {
			snprintf(
			    err, errlen,
			    "PCR values: \"%.16s\" is not a PCR index 0-15",
			    v->string);
			return -1;
		}
		if (!cJSON_IsString(v) ||
		    hex_decode_str(v->valuestring, values[i], 32) != 32) {
			snprintf(err, errlen,
			         "PCR values: PCR %ld is not 64 hex digits", i);
			return -1;
		}
		*mask |= 1u << i;
	}
	if (*mask == 0) {
		snprintf(err, errlen, "PCR values: none given");
		return -1;
	}
	return 0;
}

static bool
sig_ok(const TPM2B_PUBLIC *ak, const uint8_t *msg, size_t len,
       const uint8_t *sig, size_t siglen)
{
	EVP_PKEY   *pk = tek_pub_to_pkey(ak);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool        ok = false;

	if (pk != NULL && md != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1) {
		/* RSA keys default to PKCS#1 v1.5 padding: TPM RSASSA */
		ok = EVP_DigestVerify(md, sig, siglen, msg, len) == 1;
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return ok;
}

int
vfy_check_quote(const TPM2B_PUBLIC *ak, const uint8_t *attest, size_t len,
                const uint8_t *sig, size_t siglen, const uint8_t *nonce,
                size_t noncelen, uint32_t mask, const uint8_t values[16][32],
                struct vfy_quote *q, char *err, size_t errlen)
{
	const TPMS_PCR_SELECTION *ps;
	TPMS_ATTEST               a;
	uint8_t                   cat[16 * 32], d[SHA256_DIGEST_LENGTH];
	size_t                    n = 0;
	uint32_t                  qmask = 0;
	size_t                    off = 0;

	memset(q, 0, sizeof(*q));
	if (!sig_ok(ak, attest, len, sig, siglen)) {
		snprintf(err, errlen,
		         "quote signature does not verify with the registered "
		         "AK");
		return -1;
	}
	if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest, len, &off, &a) !=
	        TSS2_RC_SUCCESS ||
	    off != len) {
		snprintf(err, errlen, "quote: not a TPMS_ATTEST");
		return -1;
	}
	if (a.magic != TPM2_GENERATED_VALUE || a.type != TPM2_ST_ATTEST_QUOTE) {
		snprintf(err, errlen,
		         "quote: not a TPM-generated quote (magic 0x%x, type "
		         "0x%x)",
		         a.magic, a.type);
		return -1;
	}
	if (a.extraData.size != noncelen ||
	    CRYPTO_memcmp(a.extraData.buffer, nonce, noncelen) != 0) {
		snprintf(err, errlen,
		         "quote: made for another nonce than the one reported");
		return -1;
	}
	if (a.attested.quote.pcrSelect.count != 1) {
		snprintf(err, errlen, "quote: %u PCR banks (want sha256 only)",
		         a.attested.quote.pcrSelect.count);
		return -1;
	}
	ps = &a.attested.quote.pcrSelect.pcrSelections[0];
	if (ps->hash != TPM2_ALG_SHA256 || ps->sizeofSelect > 3) {
		snprintf(err, errlen, "quote: not over the sha256 bank");
		return -1;
	}
	for (int i = 0; i < ps->sizeofSelect; i++) {
		qmask |= (uint32_t) ps->pcrSelect[i] << (8 * i);
	}
	if (qmask != mask) {
		char want[64], got[64];

		pcrset_format(qmask, got, sizeof(got));
		pcrset_format(mask, want, sizeof(want));
		snprintf(err, errlen,
		         "quote: PCRs %s quoted, values given for %s", got,
		         want);
		return -1;
	}
	/* the values reported are the ones the TPM digested */
	for (int i = 0; i < 16; i++) {
		if (mask & (1u << i)) {
			memcpy(cat + n, values[i], 32);
			n += 32;
		}
	}
	SHA256(cat, n, d);
	if (a.attested.quote.pcrDigest.size != sizeof(d) ||
	    memcmp(a.attested.quote.pcrDigest.buffer, d, sizeof(d)) != 0) {
		snprintf(err, errlen,
		         "quote: the PCR values reported are not the ones "
		         "quoted (pcrDigest differs)");
		return -1;
	}
	q->mask = qmask;
	q->clock = a.clockInfo.clock;
	q->reset_count = a.clockInfo.resetCount;
	q->restart_count = a.clockInfo.restartCount;
	q->safe = a.clockInfo.safe;
	return 0;
}

uint32_t
vfy_pcrs_differ(uint32_t mask, const uint8_t values[16][32], uint32_t refmask,
                const uint8_t ref[16][32])
{
	uint32_t bad = 0;

	for (int i = 0; i < 16; i++) {
		uint32_t b = 1u << i;

		if (!(refmask & b)) {
			continue;
		}
		/* a reference PCR the quote left out counts as differing */
		if (!(mask & b) || memcmp(values[i], ref[i], 32) != 0) {
			bad |= b;
		}
	}
	return bad;
}
