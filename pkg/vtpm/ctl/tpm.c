/*
 * tpm.c: vtpmctl tpm UUID: a stdin/stdout bridge to a vTPM's TPM command
 * channel, in the framing of the tpm2-tss "cmd" TCTI (raw TPM commands in
 * on stdin, raw responses out on stdout), so any tpm2-tools command can
 * talk to a vTPM that no VM has attached yet:
 *   tpm2_getrandom -T "cmd:vtpmctl --root DIR tpm UUID" 8
 * The channel is made the way QEMU makes it: a socketpair, one end handed
 * to swtpm with CMD_SET_DATAFD on the control socket (which is closed right
 * after: swtpm serves one control client at a time).
 */
#include "vtpmctl.h"

#include "common.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TPM_HDR 10
#define TPM_MAX 8192 /* bigger than any TPM 2.0 command or response */

/* 1: all len bytes, 0: end of file before the first byte, -1: error or a
 * short message */
static int
read_full(int fd, uint8_t *buf, size_t len)
{
	ssize_t n = read_all(fd, buf, len);

	if (n == 0 && len > 0) {
		return 0;
	}
	return n >= 0 && (size_t) n == len ? 1 : -1;
}

/* Open the TPM channel of the vTPM behind ctrl. -1 with err. */
static int
open_channel(const char *uuid, const char *ctrl, int timeout_ms, char *err,
             size_t errlen)
{
	uint32_t result = 0;
	int      cfd, tpmfd = -1;

	cfd = swtpm_ctrl_connect(ctrl, timeout_ms);
	if (cfd < 0) {
		snprintf(err, errlen, "vTPM %s: connect %s: %s", uuid, ctrl,
		         strerror(errno));
		return -1;
	}
	if (swtpm_ctrl_set_datafd(cfd, &tpmfd, &result) < 0) {
		snprintf(err, errlen,
		         "vTPM %s: CMD_SET_DATAFD on %s: %s (is a VM attached? "
		         "swtpm serves one control client at a time)",
		         uuid, ctrl, strerror(errno));
		close(cfd);
		return -1;
	}
	close(cfd);
	if (result != 0) {
		snprintf(err, errlen, "vTPM %s: CMD_SET_DATAFD: TPM rc 0x%x",
		         uuid, result);
		if (tpmfd >= 0) {
			close(tpmfd);
		}
		return -1;
	}
	return tpmfd;
}

int
vctl_tpm_bridge(const char *rundir, const char *uuid, int timeout_ms)
{
	struct vctl_status     st;
	const struct vctl_row *r;
	char                   ctrl[SOCK_LEN], err[512];
	uint8_t                cmd[TPM_MAX], rsp[TPM_MAX];
	int                    tpmfd, rc = 0;

	if (!uuid_valid(uuid)) {
		fprintf(stderr, "vtpmctl: tpm: \"%s\" is not a UUID\n", uuid);
		return 2;
	}
	vctl_status_fetch(&st, rundir, timeout_ms);
	r = vctl_status_find(&st, uuid);
	if (r == NULL || !r->has_vtpm || r->vt.state != VTPM_READY ||
	    r->vt.ctrl_socket[0] == '\0') {
		fprintf(stderr, "vtpmctl: tpm %s: %s\n", uuid,
		        r == NULL || !r->has_vtpm ? "no such vTPM in VtpmStatus"
		                                  : "its vTPM is not READY");
		vctl_status_free(&st);
		return 1;
	}
	snprintf(ctrl, sizeof(ctrl), "%s", r->vt.ctrl_socket);
	vctl_status_free(&st);
	tpmfd = open_channel(uuid, ctrl, timeout_ms, err, sizeof(err));
	if (tpmfd < 0) {
		fprintf(stderr, "vtpmctl: %s\n", err);
		return 1;
	}
	for (;;) {
		uint32_t size;
		int      n = read_full(STDIN_FILENO, cmd, TPM_HDR);

		if (n == 0) {
			break; /* the TCTI closed our stdin: done */
		}
		if (n < 0) {
			fprintf(stderr,
			        "vtpmctl: tpm %s: short command header "
			        "on stdin\n",
			        uuid);
			rc = 1;
			break;
		}
		size = (uint32_t) cmd[2] << 24 | (uint32_t) cmd[3] << 16 |
		       (uint32_t) cmd[4] << 8 | cmd[5];
		if (size < TPM_HDR || size > sizeof(cmd) ||
		    read_full(STDIN_FILENO, cmd + TPM_HDR, size - TPM_HDR) !=
		        1) {
			fprintf(stderr,
			        "vtpmctl: tpm %s: bad command of %u "
			        "bytes on stdin\n",
			        uuid, size);
			rc = 1;
			break;
		}
		int len =
		    swtpm_tpm_transmit(tpmfd, cmd, size, rsp, sizeof(rsp),
		                       timeout_ms < 10000 ? 10000 : timeout_ms);
		if (len < 0) {
			fprintf(stderr,
			        "vtpmctl: tpm %s: no response from "
			        "swtpm: %s\n",
			        uuid, strerror(errno));
			rc = 1;
			break;
		}
		if (write_all(STDOUT_FILENO, rsp, (size_t) len) < 0) {
			rc = 1;
			break;
		}
	}
	close(tpmfd);
	return rc;
}
