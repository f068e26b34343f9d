/*
 * rc.c: TPM return codes as text, and the "what: rc" error every TPM
 * helper reports.
 */
#include "tpm_ek.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_rc.h>

const char *
tek_rc_str(TSS2_RC rc, char *buf, size_t len)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

	/* Tss2_RC_Decode formats into a static buffer (one per process in
	 * older tpm2-tss, one per thread since 3.x): copy it out under a
	 * lock so that the launcher's workers and the broker's threads never
	 * read each other's text, whichever library is installed */
	pthread_mutex_lock(&mu);
	snprintf(buf, len, "0x%x (%s)", (unsigned) rc, Tss2_RC_Decode(rc));
	pthread_mutex_unlock(&mu);
	return buf;
}

int
tek_fail(char *err, size_t errlen, const char *what, TSS2_RC rc)
{
	char b[128];

	snprintf(err, errlen, "%s: %s", what, tek_rc_str(rc, b, sizeof(b)));
	return -1;
}
