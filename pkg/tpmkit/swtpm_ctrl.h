/*
 * swtpm_ctrl.h: swtpm's control channel (the "ioctl" protocol of
 * swtpm_ioctl and QEMU's tpm_emulator) over a unix socket.
 *
 * A command is a 32-bit big-endian code, optionally followed by a payload;
 * every response starts with a 32-bit big-endian TPM result (0 = success).
 * swtpm serves one control client at a time: connect, send, close.
 */
#ifndef VTPM_SWTPM_CTRL_H
#define VTPM_SWTPM_CTRL_H

#include <stddef.h>
#include <stdint.h>

/* Command codes (swtpm's include/swtpm/tpm_ioctl.h). */
#define SWTPM_CMD_GET_CAPABILITY 1
#define SWTPM_CMD_INIT           2
#define SWTPM_CMD_SHUTDOWN       3
#define SWTPM_CMD_SET_DATAFD     16
/* CMD_INIT flag: drop the volatile state instead of resuming it */
#define SWTPM_INIT_DELETE_VOLATILE 1

/* Connect to the control socket at path. Fails at once when nobody
 * listens; every later send/receive on the fd times out after
 * timeout_ms. Returns the fd (CLOEXEC) or -1 with errno set. */
int swtpm_ctrl_connect(const char *path, int timeout_ms);
/* Keep trying to connect until it works or timeout_ms pass (the socket
 * appears a few ms after swtpm starts). */
int swtpm_ctrl_connect_wait(const char *path, int timeout_ms);
/* CMD_INIT with flags; *result gets the TPM result. 0 when the exchange
 * happened (check *result), -1 with errno on an I/O error. */
int swtpm_ctrl_init(int fd, uint32_t flags, uint32_t *result);
/* CMD_SHUTDOWN: swtpm saves its volatile state and exits. */
int swtpm_ctrl_shutdown(int fd, uint32_t *result);
/* CMD_SET_DATAFD: hand swtpm one end of a new socketpair (SCM_RIGHTS);
 * *tpmfd gets the other end, on which raw TPM commands are exchanged
 * (until QEMU's own CMD_SET_DATAFD replaces it). */
int swtpm_ctrl_set_datafd(int fd, int *tpmfd, uint32_t *result);
/* Send one TPM command on tpmfd and read the whole response (its size is
 * in the header). Returns the response length or -1. */
int swtpm_tpm_transmit(int tpmfd, const uint8_t *cmd, size_t cmdlen,
                       uint8_t *rsp, size_t rspmax, int timeout_ms);
/* TPM response code of a response buffer (bytes 6..9), or -1 if short. */
int64_t swtpm_tpm_rc(const uint8_t *rsp, size_t len);

#endif
