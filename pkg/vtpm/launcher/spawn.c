/*
 * spawn.c: start one swtpm for a VM and health-check it with CMD_INIT.
 *
 * swtpm runs in the foreground (no --daemon), in its own session, as our
 * child: its pidfd tells the main loop when it dies, and waitid() gives
 * the exit status. The key goes through a pipe (--key fd=3), written
 * before the spawn; it never touches a file system.
 *
 * Sandboxed (the default, sandbox.c): the VM's own uid, the control
 * socket and log made here and passed as fds 4 and 5 (the log is its
 * stdout and stderr too), the pid file written here (swtpm would need
 * /proc to write one through an fd). --no-sandbox: swtpm creates them by
 * path, as --runas USER when root.
 */
#include "launcher.h"
#include "log.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_FD         3
#define CTRL_FD        4 /* sandboxed: the listening control socket */
#define LOG_FD         5
#define NFDS           6
#define LOG_TAIL_LINES 3

extern char **environ;

int
spawn_paths(const struct launcher_cfg *cfg, const char *uuid, char *ctrl,
            char *pidfile, char *logfile, size_t len)
{
	if ((ctrl != NULL &&
	     path_join(ctrl, len, "%s/%s.ctrl", cfg->swtpm_dir, uuid) < 0) ||
	    (pidfile != NULL &&
	     path_join(pidfile, len, "%s/%s.pid", cfg->swtpm_dir, uuid) < 0) ||
	    (logfile != NULL &&
	     path_join(logfile, len, "%s/%s.log", cfg->swtpm_dir, uuid) < 0)) {
		return -1;
	}
	return 0;
}

/* Append a formatted string to a->buf and point the next argv at it. */
static int add(struct spawn_argv *a, int *n, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
add(struct spawn_argv *a, int *n, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int     w;

	if (*n >= SPAWN_MAX_ARGS - 1) {
		return -1;
	}
	va_start(ap, fmt);
	w = vsnprintf(a->buf + *used, sizeof(a->buf) - *used, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t) w >= sizeof(a->buf) - *used) {
		return -1;
	}
	a->argv[(*n)++] = a->buf + *used;
	a->argv[*n] = NULL;
	*used += (size_t) w + 1;
	return 0;
}

int
spawn_build_argv(const struct launcher_cfg *cfg, const char *uuid,
                 const char *state_dir, int keyfd, struct spawn_argv *a)
{
	char   ctrl[SOCK_LEN], pidf[PATH_LEN], logf[PATH_LEN];
	int    n = 0;
	size_t used = 0;

	memset(a, 0, sizeof(*a));
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0 ||
	    spawn_paths(cfg, uuid, NULL, pidf, logf, sizeof(pidf)) < 0) {
		return -1;
	}
	if (add(a, &n, &used, "%s", cfg->swtpm) < 0 ||
	    add(a, &n, &used, "socket") < 0 ||
	    add(a, &n, &used, "--tpm2") < 0 ||
	    add(a, &n, &used, "--tpmstate") < 0 ||
	    add(a, &n, &used, "dir=%s", state_dir) < 0) {
		return -1;
	}
	if (cfg->sandbox) {
		if (add(a, &n, &used, "--ctrl") < 0 ||
		    add(a, &n, &used, "type=unixio,fd=%d", CTRL_FD) < 0 ||
		    add(a, &n, &used, "--log") < 0 ||
		    add(a, &n, &used, "fd=%d", LOG_FD) < 0) {
			return -1;
		}
	} else if (add(a, &n, &used, "--ctrl") < 0 ||
	           add(a, &n, &used, "type=unixio,path=%s", ctrl) < 0 ||
	           add(a, &n, &used, "--pid") < 0 ||
	           add(a, &n, &used, "file=%s", pidf) < 0 ||
	           add(a, &n, &used, "--log") < 0 ||
	           add(a, &n, &used, "file=%s", logf) < 0) {
		return -1;
	}
	if (add(a, &n, &used, "--seccomp") < 0 ||
	    add(a, &n, &used, "action=kill") < 0) {
		return -1;
	}
	if (cfg->runas && (add(a, &n, &used, "--runas") < 0 ||
	                   add(a, &n, &used, "%s", cfg->swtpm_user) < 0)) {
		return -1;
	}
	if (keyfd >= 0 &&
	    (add(a, &n, &used, "--key") < 0 ||
	     add(a, &n, &used, "fd=%d,format=binary,mode=aes-256-cbc", keyfd) <
	         0)) {
		return -1;
	}
	return 0;
}

/* posix_spawn swtpm with stdio on /dev/null and the key pipe on KEY_FD. */
static int
do_spawn(const struct launcher_cfg *cfg, const char *uuid,
         const char *state_dir, int keyrd, pid_t *pid, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          at;
	struct spawn_argv          a;
	sigset_t                   none, all;
	int                        rv;

	if (spawn_build_argv(cfg, uuid, state_dir, keyrd >= 0 ? KEY_FD : -1,
	                     &a) < 0) {
		snprintf(err, errlen, "swtpm command line too long");
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	/* own session: a signal to the launcher's group spares swtpm */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID |
	                                  POSIX_SPAWN_SETSIGMASK |
	                                  POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (keyrd >= 0) {
		posix_spawn_file_actions_adddup2(&fa, keyrd, KEY_FD);
	}
	posix_spawn_file_actions_addclosefrom_np(&fa, keyrd >= 0 ? KEY_FD + 1
	                                                         : KEY_FD);
	rv = posix_spawn(pid, cfg->swtpm, &fa, &at, a.argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rv != 0) {
		snprintf(err, errlen, "spawn %s: %s", cfg->swtpm, strerror(rv));
		return -1;
	}
	return 0;
}

/* swtpm ended before it answered: how, and the last lines of its log */
static void
early_exit(int pidfd, const char *logf, char *err, size_t errlen)
{
	char how[128], tail[REASON_LEN];

	(void) sup_reap(pidfd, true, how, sizeof(how));
	sbx_log_tail(logf, LOG_TAIL_LINES, tail, sizeof(tail));
	strfmt(err, errlen,
	       "swtpm exited before answering on its control socket (%s); "
	       "log %s: %s",
	       how, logf, tail[0] ? tail : "(empty)");
}

/* Connect to the control socket as soon as it appears (sandboxed it
 * exists before swtpm does: the connection waits in its backlog, and is
 * reset when swtpm dies); give up when the child dies or the deadline
 * passes. */
static int
wait_ctrl(const char *ctrl, const char *logf, int pidfd, uint64_t end,
          char *err, size_t errlen)
{
	struct pollfd pfd = {pidfd, POLLIN, 0};
	int           delay = 1, fd;

	for (;;) {
		if ((fd = swtpm_ctrl_connect(ctrl, 5000)) >= 0) {
			return fd;
		}
		if (errno != ENOENT && errno != ECONNREFUSED) {
			strfmt(err, errlen, "connect %s: %s", ctrl,
			       strerror(errno));
			return -1;
		}
		if (now_ms() >= end) {
			strfmt(err, errlen,
			       "control socket %s did not answer in time",
			       ctrl);
			return -1;
		}
		if (poll(&pfd, 1, delay) > 0) {
			early_exit(pidfd, logf, err, errlen);
			return -1;
		}
		if (delay < 4) {
			delay *= 2;
		}
	}
}

/* Sandboxed: the VM's uid, its files made here and passed as fds. */
static int
spawn_sandboxed(const struct launcher_cfg *cfg, const char *uuid,
                const char *state_dir, int keyrd, pid_t *pid, char *err,
                size_t errlen)
{
	char              ctrl[SOCK_LEN], pidf[PATH_LEN], logf[PATH_LEN];
	char              comm[64] = "";
	struct spawn_argv a;
	uid_t             uid;
	pid_t             other;
	int               fds[NFDS], pfd = -1, rc = -1, n;
	char              line[32];

	for (int i = 0; i < NFDS; i++) {
		fds[i] = -1;
	}
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0 ||
	    spawn_paths(cfg, uuid, NULL, pidf, logf, sizeof(pidf)) < 0 ||
	    spawn_build_argv(cfg, uuid, state_dir, keyrd >= 0 ? KEY_FD : -1,
	                     &a) < 0) {
		strfmt(err, errlen, "swtpm command line too long");
		return -1;
	}
	if (sbx_uid(cfg, uuid, &uid, err, errlen) < 0) {
		return -1;
	}
	/* never share a uid: a process of it could reach this swtpm */
	if ((other = sbx_uid_user(cfg, uid)) != 0) {
		sbx_comm(other, comm, sizeof(comm));
		if (strcmp(comm, "swtpm") == 0) {
			/* e.g. one whose pid file was lost: it may hold
			 * this VM's state, so no second one */
			strfmt(err, errlen,
			       "swtpm uid %u of this VM is in use by swtpm pid "
			       "%d, which was not adopted (never two swtpm on "
			       "one state)",
			       (unsigned) uid, (int) other);
		} else {
			strfmt(err, errlen,
			       "swtpm uid %u of this VM is in use by pid %d "
			       "(%s), which is not a swtpm of ours",
			       (unsigned) uid, (int) other, comm);
		}
		return -1;
	}
	if (sbx_own_state(state_dir, uid, err, errlen) < 0 ||
	    (fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (fds[CTRL_FD] = sbx_listen(ctrl, uid, err, errlen)) < 0 ||
	    (pfd = sbx_open_file(pidf, uid, err, errlen)) < 0 ||
	    (fds[LOG_FD] = sbx_open_file(logf, uid, err, errlen)) < 0) {
		if (fds[0] < 0 && err[0] == '\0') {
			strfmt(err, errlen, "/dev/null: %s", strerror(errno));
		}
		goto out;
	}
	fds[1] = fds[2] = fds[LOG_FD];
	fds[KEY_FD] = keyrd;
	if (sbx_spawn(cfg, state_dir, uid, fds, NFDS, a.argv, pid, err,
	              errlen) < 0) {
		goto out;
	}
	n = snprintf(line, sizeof(line), "%d\n", (int) *pid);
	if (write(pfd, line, (size_t) n) != n) {
		strfmt(err, errlen, "%s: %s", pidf, strerror(errno));
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = 0;
		goto out;
	}
	rc = 0;
out:
	if (pfd >= 0) {
		close(pfd);
	}
	/* the listening socket lives in swtpm alone: when it dies, a
	 * waiting connect is refused instead of hanging */
	for (int i = 0; i < NFDS; i++) {
		if (fds[i] >= 0 && i != 1 && i != 2 && i != KEY_FD) {
			close(fds[i]);
		}
	}
	return rc;
}

/* Did swtpm log that it could not lock the state directory? */
static bool
locked(const char *logf)
{
	char  *buf;
	size_t len;
	bool   yes;

	if (read_file(logf, 65536, &buf, &len) < 0) {
		return false;
	}
	yes = strstr(buf, "Could not lock") != NULL;
	free(buf);
	return yes;
}

int
spawn_start(const struct launcher_cfg *cfg, const char *uuid,
            const char *state_dir, const uint8_t *key, pid_t *pid, int *pidfd,
            bool *init_failed, char *err, size_t errlen)
{
	char     ctrl[SOCK_LEN], pidf[PATH_LEN], logf[PATH_LEN];
	int      kp[2] = {-1, -1}, fd, saved;
	uint32_t res;
	uint64_t end = now_ms() + (uint64_t) cfg->start_timeout_ms;

	*pid = 0;
	*pidfd = -1;
	*init_failed = false;
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0 ||
	    spawn_paths(cfg, uuid, NULL, pidf, logf, sizeof(pidf)) < 0) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	err[0] = '\0';
	/* unsandboxed, swtpm opens these itself as the swtpm uid: say which
	 * path it could not reach instead of letting it exit */
	if (!cfg->sandbox && cfg->runas &&
	    (sbx_reach(state_dir, cfg->swtpm_uid, cfg->swtpm_gid, true,
	               "state directory", err, errlen) < 0 ||
	     sbx_reach(cfg->swtpm_dir, cfg->swtpm_uid, cfg->swtpm_gid, true,
	               "run directory", err, errlen) < 0)) {
		return -1;
	}
	/* a stale socket would answer ECONNREFUSED until swtpm replaces it;
	 * the log holds this run only (see locked()) */
	(void) unlink(ctrl);
	(void) unlink(pidf);
	(void) unlink(logf);
	if (key != NULL) {
		/* the whole key fits in the pipe buffer: write, close */
		if (pipe2(kp, O_CLOEXEC) < 0) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			return -1;
		}
		if (write(kp[1], key, KEY_LEN) != KEY_LEN) {
			snprintf(err, errlen, "key pipe: %s", strerror(errno));
			close(kp[0]);
			close(kp[1]);
			return -1;
		}
		close(kp[1]);
	}
	saved =
	    cfg->sandbox
	        ? spawn_sandboxed(cfg, uuid, state_dir, kp[0], pid, err, errlen)
	        : do_spawn(cfg, uuid, state_dir, kp[0], pid, err, errlen);
	if (kp[0] >= 0) {
		close(kp[0]);
	}
	if (saved < 0) {
		return -1;
	}
	if ((*pidfd = pidfd_open(*pid, 0)) < 0) {
		snprintf(err, errlen, "pidfd_open %d: %s", (int) *pid,
		         strerror(errno));
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = 0;
		return -1;
	}
	if ((fd = wait_ctrl(ctrl, logf, *pidfd, end, err, errlen)) < 0) {
		return -1;
	}
	if (swtpm_ctrl_init(fd, 0, &res) < 0) {
		char tail[REASON_LEN];

		saved = errno;
		if (poll(&(struct pollfd){*pidfd, POLLIN, 0}, 1, 100) > 0) {
			/* it never served the socket (sandboxed: the
			 * backlog was reset when it died) */
			early_exit(*pidfd, logf, err, errlen);
			close(fd);
			return -1;
		}
		sbx_log_tail(logf, LOG_TAIL_LINES, tail, sizeof(tail));
		strfmt(err, errlen, "CMD_INIT on %s: %s%s%s", ctrl,
		       strerror(saved), tail[0] ? "; log: " : "", tail);
		close(fd);
		*init_failed = true;
		return -1;
	}
	/* one client at a time: QEMU must be able to attach next */
	close(fd);
	if (res != 0) {
		snprintf(err, errlen, "CMD_INIT on %s: TPM result 0x%x", ctrl,
		         res);
		/* another swtpm holds the state: not a corrupt state, and
		 * certainly nothing to restore or reset */
		if (locked(logf)) {
			snprintf(
			    err, errlen,
			    "state directory %s is locked by another swtpm",
			    state_dir);
			return -1;
		}
		*init_failed = true;
		return -1;
	}
	return 0;
}
