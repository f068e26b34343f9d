/* tpm.c: the ESAPI context over the TCTI loader, return-code helpers,
 * retries with backoff, flushes, re-open after a dropped connection. */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#include <tss2/tss2_tctildr.h>

#define TPM_RETRY_MAX 8

int
tpm_open(struct tpm *t, const char *tcti, char *err, size_t errlen)
{
	static const struct tpm_handles def = TPM_HANDLES_DEFAULT;

	memset(t, 0, sizeof(*t));
	t->h = def; /* the broker sets its configured ones after this */
	t->srk = ESYS_TR_NONE;
	snprintf(t->tcti, sizeof(t->tcti), "%s", tcti);
	return tpm_reopen(t, err, errlen);
}

static void
tpm_drop(struct tpm *t)
{
	if (t->ectx != NULL) {
		Esys_Finalize(&t->ectx);
	}
	if (t->tctx != NULL) {
		Tss2_TctiLdr_Finalize(&t->tctx);
	}
	t->ectx = NULL;
	t->tctx = NULL;
	t->srk = ESYS_TR_NONE;
}

int
tpm_reopen(struct tpm *t, char *err, size_t errlen)
{
	TSS2_RC rc;
	char    rcs[128];

	if (t->tctx != NULL) {
		t->reopens++;
	}
	tpm_drop(t);
	rc = Tss2_TctiLdr_Initialize(t->tcti, &t->tctx);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "tcti %s: cannot open: %s", t->tcti,
		         tek_rc_str(rc, rcs, sizeof(rcs)));
		t->tctx = NULL;
		return -1;
	}
	rc = Esys_Initialize(&t->ectx, t->tctx, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(err, errlen, "tcti %s: Esys_Initialize: %s", t->tcti,
		         tek_rc_str(rc, rcs, sizeof(rcs)));
		t->ectx = NULL;
		tpm_drop(t);
		return -1;
	}
	return 0;
}

void
tpm_close(struct tpm *t)
{
	tpm_drop(t);
}

bool
tpm_is_open(const struct tpm *t)
{
	return t->ectx != NULL;
}

bool
tpm_rc_retryable(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
	TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;

	if (rc == TSS2_RC_SUCCESS) {
		return false;
	}
	if (layer == TSS2_TPM_RC_LAYER) {
		return base == TPM2_RC_RETRY || base == TPM2_RC_YIELDED ||
		       base == TPM2_RC_TESTING || base == TPM2_RC_NV_RATE;
	}
	/* "busy": a TCTI or ESAPI asking to try again */
	return (base & 0xffff) == TSS2_BASE_RC_TRY_AGAIN;
}

bool
tpm_rc_is_io(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
	TSS2_RC base = rc & 0xffff;

	if (layer == TSS2_TCTI_RC_LAYER) {
		return true;
	}
	if (layer == TSS2_ESAPI_RC_LAYER || layer == TSS2_SYS_RC_LAYER) {
		return base == TSS2_BASE_RC_IO_ERROR ||
		       base == TSS2_BASE_RC_NO_CONNECTION ||
		       base == TSS2_BASE_RC_MALFORMED_RESPONSE ||
		       base == TSS2_BASE_RC_INSUFFICIENT_RESPONSE ||
		       base == TSS2_BASE_RC_BAD_SEQUENCE;
	}
	return false;
}

bool
tpm_rc_is_policy(TSS2_RC rc)
{
	TSS2_RC base;

	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
		return false;
	}
	base = rc & ~TSS2_RC_LAYER_MASK;
	if (base & TPM2_RC_FMT1) {
		/* format one: error number in bits 0..5 (+ the FMT1 bit) */
		return (base & (TPM2_RC_FMT1 | 0x3f)) == TPM2_RC_POLICY_FAIL;
	}
	return base == TPM2_RC_POLICY || base == TPM2_RC_PCR_CHANGED;
}

int
tpm_backoff(unsigned attempt)
{
	if (attempt > TPM_RETRY_MAX) {
		return -1;
	}
	/* 5, 10, 20, ... 320 ms, then give up (about 1.3 s in all) */
	sleep_ms(5u << (attempt > 7 ? 6 : attempt - 1));
	return 0;
}

void
tpm_flush(struct tpm *t, ESYS_TR *h)
{
	TSS2_RC rc;
	char    rcs[128];

	if (*h == ESYS_TR_NONE || t->ectx == NULL) {
		*h = ESYS_TR_NONE;
		return;
	}
	TPM_RETRY(rc, Esys_FlushContext(t->ectx, *h));
	if (rc != TSS2_RC_SUCCESS) {
		log_warnx("Esys_FlushContext 0x%x: %s", (unsigned) *h,
		          tek_rc_str(rc, rcs, sizeof(rcs)));
	}
	*h = ESYS_TR_NONE;
}
