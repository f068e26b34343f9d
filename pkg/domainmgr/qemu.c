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
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

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
	const char                *argv[DM_QEMU_ARGV_MAX];
	struct dm_qemu_bufs        b;
	char                       cmd[1024];
	size_t                     o = 0;
	pid_t                      p;
	int                        rc;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	sigset_t                   none;

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
	/* posix_spawn, not fork+exec: NNG's threads may hold locks (malloc)
	 * that a forked child of a threaded process could deadlock on */
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		snprintf(err, errlen, "posix_spawn_file_actions_init: %s",
		         strerror(rc));
		return -1;
	}
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		snprintf(err, errlen, "posix_spawnattr_init: %s", strerror(rc));
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	/* the daemon blocks its signals for its signalfd; QEMU must not
	 * inherit that, and a terminal's ^C goes to the daemon only */
	sigemptyset(&none);
	if ((rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO,
	                                           "/dev/null", O_RDONLY, 0)) ||
	    (rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO,
	                                           "/dev/null", O_WRONLY, 0)) ||
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) ||
	    (rc = posix_spawnattr_setpgroup(&attr, 0)) ||
	    (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	                                              POSIX_SPAWN_SETPGROUP))) {
		snprintf(err, errlen, "posix_spawn setup: %s", strerror(rc));
		goto fail;
	}
	rc = posix_spawnp(&p, argv[0], &fa, &attr, (char *const *) argv,
	                  environ);
	if (rc != 0) {
		snprintf(err, errlen, "spawn %s: %s", argv[0], strerror(rc));
		goto fail;
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	*pid = p;
	return 0;
fail:
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return -1;
}
