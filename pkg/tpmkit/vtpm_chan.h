/*
 * vtpm_chan.h: a vTPM's command channel (vtpm_chan.c): a tpm2-tss TCTI
 * over a raw TPM command fd (swtpm's CMD_SET_DATAFD channel) and an ESYS
 * context on it, for the launcher and vtpmctl.
 */
#ifndef VTPM_VTPM_CHAN_H
#define VTPM_VTPM_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tcti.h>

/* A TCTI whose transmit/receive exchange raw TPM commands over fd (which
 * stays the caller's). Heap-allocated; free with tek_tcti_free. */
TSS2_TCTI_CONTEXT *tek_tcti_new(int fd, int timeout_ms);
void               tek_tcti_free(TSS2_TCTI_CONTEXT *t);

/* A vTPM's command channel before any VM attached: CMD_SET_DATAFD on
 * the control socket (closed right after), ESYS over the fd, and
 * TPM2_Startup(CLEAR) when the TPM was not started yet. */
struct tek_vtpm {
	char               ctrl[108];
	int                fd;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT      *ectx;
	bool               started; /* we sent Startup: undo it on close */
};
int tek_vtpm_open(struct tek_vtpm *v, const char *ctrl, int timeout_ms,
                  char *err, size_t errlen);
/* Close; when we started the TPM: Shutdown(CLEAR) and CMD_INIT again,
 * so the VM's firmware finds a TPM waiting for its own Startup. */
int tek_vtpm_close(struct tek_vtpm *v, char *err, size_t errlen);

/* TPM2_Startup(CLEAR); an already started TPM is fine. */
int tek_startup(ESYS_CONTEXT *e, char *err, size_t errlen);

#endif
