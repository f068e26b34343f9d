/*
 * qemu.c: one QEMU per running app (--qemu). TCG (KVM guests hang on this
 * kind of host), no display, serial console to a per-VM log file, and the
 * vTPM as QEMU's own emulator backend on the swtpm control socket:
 *   -chardev socket,id=chrtpm,path=CTRL -tpmdev emulator,id=tpm0,
 *   chardev=chrtpm -device tpm-tis|tpm-crb,tpmdev=tpm0
 * QEMU sends CMD_SHUTDOWN to swtpm when it exits.
 */
#include "domainmgr.h"

#include "common.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
dm_qemu_serial_path(const struct dm_qemu *q, const struct dm_app *a, char *dst,
                    size_t len)
{
	const char *t = q->serial;
	size_t      o = 0;

	if (t == NULL || t[0] == '\0') {
		if (len > 0) {
			dst[0] = '\0';
		}
		return 0;
	}
	for (; *t != '\0'; t++) {
		const char *ins = NULL;
		char        one[2] = {*t, '\0'};

		if (*t == '%' && t[1] != '\0') {
			t++;
			switch (*t) {
			case 'u':
				ins = a->uuid;
				break;
			case 'n':
				ins = a->name[0] ? a->name : a->uuid;
				break;
			case '%':
				ins = "%";
				break;
			default:
				errno = EINVAL;
				return -1;
			}
		} else {
			ins = one;
		}
		size_t n = strlen(ins);
		if (o + n >= len) {
			errno = ENAMETOOLONG;
			return -1;
		}
		/* a name is not a path: no directory changes through it */
		for (size_t k = 0; k < n; k++) {
			char c = ins[k];

			if (ins != one && ins != a->uuid &&
			    (c == '/' || c == ',')) {
				c = '_';
			}
			dst[o++] = c;
		}
	}
	dst[o] = '\0';
	return 0;
}

int
dm_qemu_argv(const struct dm_qemu *q, const struct dm_app *a,
             const char *ctrl_socket, const char **argv, size_t max,
             struct dm_qemu_bufs *b, char *err, size_t errlen)
{
	size_t n = 0;
	char   serial[4096];

#define ADD(s)                                                                 \
	do {                                                                   \
		if (n + 1 >= max) {                                            \
			snprintf(err, errlen, "too many qemu arguments");      \
			return -1;                                             \
		}                                                              \
		argv[n++] = (s);                                               \
	} while (0)

	if (q->kernel == NULL || q->kernel[0] == '\0') {
		snprintf(err, errlen, "no --kernel given");
		return -1;
	}
	ADD(q->binary ? q->binary : "qemu-system-x86_64");
	ADD("-accel");
	ADD("tcg");
	ADD("-m");
	ADD(q->memory ? q->memory : "256");
	ADD("-nographic");
	ADD("-monitor");
	ADD("none");
	snprintf(b->uuid, sizeof(b->uuid), "%s", a->uuid);
	ADD("-uuid");
	ADD(b->uuid);
	if (dm_qemu_serial_path(q, a, serial, sizeof(serial)) < 0) {
		snprintf(err, errlen, "serial log template %s: %s", q->serial,
		         strerror(errno));
		return -1;
	}
	if (serial[0] != '\0') {
		snprintf(b->serial, sizeof(b->serial), "file:%s", serial);
		ADD("-serial");
		ADD(b->serial);
	}
	ADD("-kernel");
	ADD(q->kernel);
	if (q->initrd != NULL && q->initrd[0] != '\0') {
		ADD("-initrd");
		ADD(q->initrd);
	}
	ADD("-append");
	ADD(q->append ? q->append : "console=ttyS0");
	if (ctrl_socket != NULL) {
		if (strchr(ctrl_socket, ',') != NULL) {
			snprintf(
			    err, errlen,
			    "control socket path %s has a comma, which QEMU "
			    "would split on",
			    ctrl_socket);
			return -1;
		}
		snprintf(b->chardev, sizeof(b->chardev),
		         "socket,id=chrtpm,path=%s", ctrl_socket);
		snprintf(b->device, sizeof(b->device), "%s,tpmdev=tpm0",
		         a->spec.model == VTPM_MODEL_CRB ? "tpm-crb"
		                                         : "tpm-tis");
		ADD("-chardev");
		ADD(b->chardev);
		ADD("-tpmdev");
		ADD("emulator,id=tpm0,chardev=chrtpm");
		ADD("-device");
		ADD(b->device);
	}
	for (int i = 0; i < q->nextra; i++) {
		ADD(q->extra[i]);
	}
	argv[n] = NULL;
#undef ADD
	return 0;
}

int
dm_qemu_spawn(const struct dm_qemu *q, const struct dm_app *a,
              const char *ctrl_socket, pid_t *pid, char *err, size_t errlen)
{
	const char         *argv[DM_QEMU_ARGV_MAX];
	struct dm_qemu_bufs b;
	char                cmd[1024];
	size_t              o = 0;
	pid_t               p;
	int                 nul;

	if (dm_qemu_argv(q, a, ctrl_socket, argv, DM_QEMU_ARGV_MAX, &b, err,
	                 errlen) < 0) {
		return -1;
	}
	for (int i = 0; argv[i] != NULL && o < sizeof(cmd) - 1; i++) {
		int w = snprintf(cmd + o, sizeof(cmd) - o, "%s%s", i ? " " : "",
		                 argv[i]);
		o = w < 0 ? o : o + (size_t) w;
	}
	log_debug("app %s: exec %s", a->uuid, cmd);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0) {
		snprintf(err, errlen, "open /dev/null: %s", strerror(errno));
		return -1;
	}
	p = fork();
	if (p < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(nul);
		return -1;
	}
	if (p == 0) {
		sigset_t none;

		/* the daemon blocks its signals; QEMU must not inherit that */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		setpgid(0, 0); /* a terminal's ^C goes to the daemon only */
		execvp(argv[0], (char *const *) argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0],
		        strerror(errno));
		_exit(127);
	}
	close(nul);
	*pid = p;
	return 0;
}
