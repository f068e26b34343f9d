/*
 * rc.c: TPM return codes as text, and the "what: rc" error every TPM
 * helper reports.
 */
#include "tpm_ek.h"

#include <stdio.h>
#include <string.h>

#include <tss2/tss2_rc.h>

const char *
tek_rc_str(TSS2_RC rc, char *buf, size_t len)
{
	snprintf(buf, len, "0x%x (%s)", rc, Tss2_RC_Decode(rc));
	return buf;
}

int
tek_fail(char *err, size_t errlen, const char *what, TSS2_RC rc)
{
	char b[128];

	snprintf(err, errlen, "%s: %s", what, tek_rc_str(rc, b, sizeof(b)));
	return -1;
}
