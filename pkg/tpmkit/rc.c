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

	/* Tss2_RC_Decode formats into one static buffer for the whole
	 * process: the launcher's workers and the broker's threads must not
	 * decode at the same time, so copy it out under a lock */
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
