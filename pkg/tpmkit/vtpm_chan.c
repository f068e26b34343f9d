/*
 * vtpm_chan.c: a vTPM's command channel before any VM attached: a
 * tpm2-tss TCTI over a raw command fd (swtpm's CMD_SET_DATAFD) and an
 * ESYS context on it.
 */
#include "vtpm_chan.h"
#include "tpm_ek.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tcti.h>

/* ---- a TCTI over a raw command fd ---- */

#define TCTI_MAGIC 0x7674706d66647463ULL /* "vtpmfdtc" */
#define TCTI_BUF   4096

struct fd_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common; /* first: cast target */
	int                         fd;
	int                         timeout_ms;
	size_t                      rsplen; /* response waiting, 0 = none */
	uint8_t                     rsp[TCTI_BUF];
};

static TSS2_RC
fd_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd)
{
	struct fd_tcti *t = (struct fd_tcti *) ctx;
	int             n;

	n = swtpm_tpm_transmit(t->fd, cmd, size, t->rsp, sizeof(t->rsp),
	                       t->timeout_ms);
	if (n < 10) {
		t->rsplen = 0;
		return TSS2_TCTI_RC_IO_ERROR;
	}
	t->rsplen = (size_t) n;
	return TSS2_RC_SUCCESS;
}

static TSS2_RC
fd_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t tmo)
{
	struct fd_tcti *t = (struct fd_tcti *) ctx;

	(void) tmo;
	if (t->rsplen == 0) {
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	}
	if (rsp == NULL) {
		*size = t->rsplen; /* size query */
		return TSS2_RC_SUCCESS;
	}
	if (*size < t->rsplen) {
		*size = t->rsplen;
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	}
	memcpy(rsp, t->rsp, t->rsplen);
	*size = t->rsplen;
	t->rsplen = 0;
	return TSS2_RC_SUCCESS;
}

static void
fd_finalize(TSS2_TCTI_CONTEXT *ctx)
{
	(void) ctx;
}

static TSS2_RC
fd_cancel(TSS2_TCTI_CONTEXT *ctx)
{
	(void) ctx;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_poll(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
	(void) ctx;
	(void) h;
	(void) n;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t loc)
{
	(void) ctx;
	(void) loc;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC
fd_sticky(TSS2_TCTI_CONTEXT *ctx, TPM2_HANDLE *h, uint8_t sticky)
{
	(void) ctx;
	(void) h;
	(void) sticky;
	return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

TSS2_TCTI_CONTEXT *
tek_tcti_new(int fd, int timeout_ms)
{
	struct fd_tcti *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	t->common.v1.magic = TCTI_MAGIC;
	t->common.v1.version = 2;
	t->common.v1.transmit = fd_transmit;
	t->common.v1.receive = fd_receive;
	t->common.v1.finalize = fd_finalize;
	t->common.v1.cancel = fd_cancel;
	t->common.v1.getPollHandles = fd_poll;
	t->common.v1.setLocality = fd_locality;
	t->common.makeSticky = fd_sticky;
	t->fd = fd;
	t->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	return (TSS2_TCTI_CONTEXT *) t;
}

void
tek_tcti_free(TSS2_TCTI_CONTEXT *t)
{
	free(t);
}

int
tek_startup(ESYS_CONTEXT *e, char *err, size_t errlen)
{
	TSS2_RC rc = Esys_Startup(e, TPM2_SU_CLEAR);

	if (rc != TSS2_RC_SUCCESS && (rc & 0xfff) != TPM2_RC_INITIALIZE) {
		return tek_fail(err, errlen, "TPM2_Startup", rc);
	}
	return 0;
}

int
tek_vtpm_open(struct tek_vtpm *v, const char *ctrl, int timeout_ms, char *err,
              size_t errlen)
{
	uint32_t result = 0;
	TSS2_RC  rc;
	int      cfd;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	snprintf(v->ctrl, sizeof(v->ctrl), "%s", ctrl);
	if ((cfd = swtpm_ctrl_connect(ctrl, timeout_ms)) < 0) {
		snprintf(err, errlen, "connect %s: %s", ctrl, strerror(errno));
		return -1;
	}
	if (swtpm_ctrl_set_datafd(cfd, &v->fd, &result) < 0 || result != 0) {
		snprintf(err, errlen, "CMD_SET_DATAFD on %s: %s", ctrl,
		         result ? "TPM error" : strerror(errno));
		close(cfd);
		if (v->fd >= 0) {
			close(v->fd);
		}
		v->fd = -1;
		return -1;
	}
	close(cfd); /* swtpm serves one control client at a time */
	if ((v->tcti = tek_tcti_new(v->fd, timeout_ms)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = Esys_Initialize(&v->ectx, v->tcti, NULL)) !=
	    TSS2_RC_SUCCESS) {
		tek_fail(err, errlen, "Esys_Initialize", rc);
		goto fail;
	}
	rc = Esys_Startup(v->ectx, TPM2_SU_CLEAR);
	if (rc == TSS2_RC_SUCCESS) {
		v->started = true;
	} else if ((rc & 0xfff) != TPM2_RC_INITIALIZE) {
		tek_fail(err, errlen, "TPM2_Startup", rc);
		goto fail;
	}
	return 0;
fail:
	(void) tek_vtpm_close(v, NULL, 0);
	return -1;
}

int
tek_vtpm_close(struct tek_vtpm *v, char *err, size_t errlen)
{
	uint32_t result = 0;
	int      cfd, ret = 0;

	if (v->ectx != NULL && v->started) {
		(void) Esys_Shutdown(v->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
		                     ESYS_TR_NONE, TPM2_SU_CLEAR);
	}
	if (v->ectx != NULL) {
		Esys_Finalize(&v->ectx);
	}
	tek_tcti_free(v->tcti);
	v->tcti = NULL;
	if (v->fd >= 0) {
		close(v->fd);
		v->fd = -1;
	}
	if (v->started) {
		v->started = false;
		cfd = swtpm_ctrl_connect(v->ctrl, 5000);
		if (cfd < 0 || swtpm_ctrl_init(cfd, 0, &result) < 0 ||
		    result != 0) {
			if (err != NULL) {
				snprintf(
				    err, errlen, "CMD_INIT on %s: %s", v->ctrl,
				    result ? "TPM error" : strerror(errno));
			}
			ret = -1;
		}
		if (cfd >= 0) {
			close(cfd);
		}
	}
	return ret;
}
