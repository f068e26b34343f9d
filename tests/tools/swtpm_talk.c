/*
 * swtpm_talk: reach a vTPM through its swtpm control socket, the way QEMU
 * does (CMD_SET_DATAFD with a socketpair), before any QEMU attaches.
 *   swtpm_talk pipe CTRL       relay TPM commands from stdin to the TPM
 *                              and responses to stdout: a TCTI for
 *                              tpm2-tools: -T "cmd:swtpm_talk pipe CTRL"
 *   swtpm_talk getrandom CTRL  TPM2_Startup(CLEAR) (TPM_RC_INITIALIZE is
 *                              fine) + TPM2_GetRandom(8), prints hex
 *   swtpm_talk init CTRL       CMD_INIT; exit 0 when the TPM accepts it
 *   swtpm_talk shutdown CTRL   CMD_SHUTDOWN
 */
#include "common.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int
datafd(const char *ctrl)
{
	uint32_t res;
	int      c, t = -1;

	if ((c = swtpm_ctrl_connect(ctrl, 5000)) < 0) {
		fprintf(stderr, "swtpm_talk: connect %s: %s\n", ctrl,
		        strerror(errno));
		return -1;
	}
	if (swtpm_ctrl_set_datafd(c, &t, &res) < 0 || res != 0) {
		fprintf(stderr, "swtpm_talk: CMD_SET_DATAFD on %s failed\n",
		        ctrl);
		t = -1;
	}
	close(c);
	return t;
}

static int
relay(int t)
{
	struct pollfd p[2] = {{0, POLLIN, 0}, {t, POLLIN, 0}};
	uint8_t       buf[8192];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			return errno == EINTR ? 0 : 1;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;
			if (!(p[i].revents & (POLLIN | POLLHUP))) {
				continue;
			}
			if ((n = read(p[i].fd, buf, sizeof(buf))) <= 0) {
				return 0;
			}
			if (write(i == 0 ? t : 1, buf, (size_t) n) != n) {
				return 1;
			}
		}
	}
}

int
main(int argc, char **argv)
{
	static const uint8_t startup[] = {0x80, 0x01, 0, 0,    0, 12,
	                                  0,    0,    1, 0x44, 0, 0};
	static const uint8_t getrand[] = {0x80, 0x01, 0, 0,    0, 12,
	                                  0,    0,    1, 0x7b, 0, 8};
	uint8_t              rsp[4096];
	uint32_t             res;
	int                  t, n, c;
	int64_t              rc;

	if (argc != 3) {
		fprintf(
		    stderr,
		    "usage: swtpm_talk pipe|getrandom|init|shutdown CTRL\n");
		return 2;
	}
	if (strcmp(argv[1], "init") == 0 || strcmp(argv[1], "shutdown") == 0) {
		if ((c = swtpm_ctrl_connect(argv[2], 5000)) < 0) {
			perror(argv[2]);
			return 1;
		}
		n = argv[1][0] == 'i' ? swtpm_ctrl_init(c, 0, &res)
		                      : swtpm_ctrl_shutdown(c, &res);
		close(c);
		if (n < 0 || res != 0) {
			fprintf(stderr, "swtpm_talk: %s: result 0x%x\n",
			        argv[1], n < 0 ? 0xffffffffu : res);
			return 1;
		}
		return 0;
	}
	if ((t = datafd(argv[2])) < 0) {
		return 1;
	}
	if (strcmp(argv[1], "pipe") == 0) {
		return relay(t);
	}
	if (strcmp(argv[1], "getrandom") != 0) {
		return 2;
	}
	n = swtpm_tpm_transmit(t, startup, sizeof(startup), rsp, sizeof(rsp),
	                       5000);
	rc = swtpm_tpm_rc(rsp, n < 0 ? 0 : (size_t) n);
	if (rc != 0 && rc != 0x100) {
		fprintf(stderr, "swtpm_talk: TPM2_Startup: rc 0x%llx\n",
		        (long long) rc);
		return 1;
	}
	n = swtpm_tpm_transmit(t, getrand, sizeof(getrand), rsp, sizeof(rsp),
	                       5000);
	if (n < 12 + 8 || swtpm_tpm_rc(rsp, (size_t) n) != 0) {
		fprintf(stderr, "swtpm_talk: TPM2_GetRandom failed\n");
		return 1;
	}
	for (int i = 12; i < 20; i++) {
		printf("%02x", rsp[i]);
	}
	printf("\n");
	close(t);
	return 0;
}
