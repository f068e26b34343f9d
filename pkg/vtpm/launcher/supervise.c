/*
 * supervise.c: how a swtpm ends. Graceful stop (CMD_SHUTDOWN, then
 * SIGTERM, then SIGKILL), reaping through the pidfd, and the words for
 * an exit status.
 */
#include "launcher.h"
#include "log.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* true when the process behind pidfd is gone within ms */
static bool
gone_within(int pidfd, int ms)
{
	struct pollfd pfd = {pidfd, POLLIN, 0};
	int           rv;

	do {
		rv = poll(&pfd, 1, ms);
	} while (rv < 0 && errno == EINTR);
	return rv > 0;
}

int
sup_reap(int pidfd, bool child, char *desc, size_t len)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (!child ||
	    waitid(P_PIDFD, (id_t) pidfd, &si, WEXITED | WNOHANG) < 0 ||
	    si.si_pid == 0) {
		snprintf(desc, len, "exited (status unknown: adopted process)");
		return -1;
	}
	if (si.si_code == CLD_EXITED) {
		snprintf(desc, len, "exited with status %d", si.si_status);
		return si.si_status;
	}
	snprintf(desc, len, "killed by signal %d (%s)%s", si.si_status,
	         strsignal(si.si_status),
	         si.si_status == SIGSYS ? ", seccomp?" : "");
	return -1;
}

static void
send_signal(int pidfd, int sig)
{
	(void) pidfd_send_signal(pidfd, sig, NULL, 0);
}

int
sup_stop(const struct launcher_cfg *cfg, const char *uuid, pid_t pid, int pidfd,
         bool child, char *how, size_t howlen)
{
	char     ctrl[SOCK_LEN], desc[128];
	int      fd, rc = 0;
	uint32_t res = 0;
	uint64_t t0 = now_ms();

	snprintf(how, howlen, "CMD_SHUTDOWN");
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) == 0 &&
	    (fd = swtpm_ctrl_connect(ctrl, 500)) >= 0) {
		/* with QEMU attached this client waits its turn and times
		 * out; QEMU's own CMD_SHUTDOWN usually ends swtpm first */
		if (swtpm_ctrl_shutdown(fd, &res) < 0) {
			log_debug("%s: CMD_SHUTDOWN on %s: %s", uuid, ctrl,
			          strerror(errno));
		}
		close(fd);
	}
	if (!gone_within(pidfd, cfg->stop_timeout_ms)) {
		log_warnx("%s: swtpm %d still running %d ms after "
		          "CMD_SHUTDOWN: SIGTERM",
		          uuid, (int) pid, cfg->stop_timeout_ms);
		snprintf(how, howlen, "SIGTERM");
		send_signal(pidfd, SIGTERM);
		if (!gone_within(pidfd, 1000)) {
			log_warnx("%s: swtpm %d ignores SIGTERM: SIGKILL", uuid,
			          (int) pid);
			snprintf(how, howlen, "SIGKILL");
			send_signal(pidfd, SIGKILL);
			if (!gone_within(pidfd, 2000)) {
				log_warnx("%s: swtpm %d survives SIGKILL", uuid,
				          (int) pid);
				rc = -1;
			}
		}
	}
	if (rc == 0) {
		(void) sup_reap(pidfd, child, desc, sizeof(desc));
		log_debug("%s: swtpm %d stopped by %s in %llu ms: %s", uuid,
		          (int) pid, how, (unsigned long long) (now_ms() - t0),
		          desc);
	}
	close(pidfd);
	sup_cleanup_files(cfg, uuid);
	return rc;
}

void
sup_cleanup_files(const struct launcher_cfg *cfg, const char *uuid)
{
	char p[PATH_LEN];

	if (path_join(p, sizeof(p), "%s/%s.ctrl", cfg->swtpm_dir, uuid) == 0) {
		(void) unlink(p);
	}
	if (path_join(p, sizeof(p), "%s/%s.pid", cfg->swtpm_dir, uuid) == 0) {
		(void) unlink(p);
	}
	if (path_join(p, sizeof(p), "%s/%s.meta", cfg->swtpm_dir, uuid) == 0) {
		(void) unlink(p);
	}
}
