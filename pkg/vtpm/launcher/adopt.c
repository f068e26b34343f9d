/*
 * adopt.c: after a launcher restart, take over the swtpm processes that
 * kept running. A process is adopted only when all of these hold:
 *   <run>/swtpm/<uuid>.pid names a live pid,
 *   /proc/<pid>/exe is a swtpm binary,
 *   its command line is "swtpm socket ... --ctrl type=unixio,path=<ours>",
 *   or, sandboxed, "--ctrl type=unixio,fd=N ... --tpmstate
 *   dir=.../tpm-state-<uuid>" and it runs as the VM's uid (uid map),
 *   <run>/swtpm/<uuid>.ctrl is a socket.
 * No control command is sent: QEMU may hold the one control connection,
 * and a CMD_INIT would reset a running guest's TPM.
 */
#include "launcher.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

int
adopt_read_pidfile(const char *path, pid_t *pid)
{
	char  *buf, *end;
	size_t len;
	long   v;

	if (read_file(path, 64, &buf, &len) < 0) {
		return -1;
	}
	errno = 0;
	v = strtol(buf, &end, 10);
	while (*end == '\n' || *end == ' ') {
		end++;
	}
	if (errno != 0 || end == buf || *end != '\0' || v <= 1 ||
	    v > 0x7fffffff) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	free(buf);
	*pid = (pid_t) v;
	return 0;
}

/* /proc files report size 0: read until EOF */
static int
read_proc(const char *path, char *buf, size_t max, size_t *len)
{
	int     fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t  got = 0;
	ssize_t n;

	if (fd < 0) {
		return -1;
	}
	while (got < max - 1 && (n = read(fd, buf + got, max - 1 - got)) > 0) {
		got += (size_t) n;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return 0;
}

/* the basename of a path, minus a " (deleted)" suffix after upgrades */
static bool
is_swtpm_exe(const char *exe, const char *configured)
{
	const char *b = strrchr(exe, '/');
	char        real[PATH_LEN];

	b = b != NULL ? b + 1 : exe;
	if (strcmp(b, "swtpm") == 0 || strcmp(b, "swtpm (deleted)") == 0) {
		return true;
	}
	return realpath(configured, real) != NULL && strcmp(real, exe) == 0;
}

int
adopt_check(const struct launcher_cfg *cfg, const char *uuid, pid_t pid,
            char *err, size_t errlen)
{
	char p[64], exe[PATH_LEN], ctrl[SOCK_LEN], want[PATH_LEN];
	static __thread char cmd[16384];
	char                *a;
	size_t               len;
	ssize_t              n;
	bool                 socket_mode = false, ctrl_ok = false;
	bool                 ctrl_fd = false, state_ok = false;
	struct stat          sb;
	char                 sdir[64];
	uid_t                uid;

	snprintf(p, sizeof(p), "/proc/%d/exe", (int) pid);
	if ((n = readlink(p, exe, sizeof(exe) - 1)) < 0) {
		snprintf(err, errlen, "pid %d: %s", (int) pid,
		         errno == ENOENT ? "no such process" : strerror(errno));
		return -1;
	}
	exe[n] = '\0';
	if (!is_swtpm_exe(exe, cfg->swtpm)) {
		snprintf(err, errlen, "pid %d is %s, not swtpm", (int) pid,
		         exe);
		return -1;
	}
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0 ||
	    path_join(want, sizeof(want), "type=unixio,path=%s", ctrl) < 0) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int) pid);
	if (read_proc(p, cmd, sizeof(cmd), &len) < 0) {
		snprintf(err, errlen, "pid %d: cmdline: %s", (int) pid,
		         strerror(errno));
		return -1;
	}
	snprintf(sdir, sizeof(sdir), "/tpm-state-%s", uuid);
	/* NUL-separated arguments */
	for (a = cmd; a < cmd + len; a += strlen(a) + 1) {
		const char *next = a + strlen(a) + 1;
		bool        has_next = next < cmd + len;

		if (strcmp(a, "socket") == 0) {
			socket_mode = true;
		}
		if (strcmp(a, "--ctrl") == 0 && has_next) {
			ctrl_ok |= strcmp(next, want) == 0;
			ctrl_fd |= strncmp(next, "type=unixio,fd=", 15) == 0;
		}
		if (strcmp(a, "--tpmstate") == 0 && has_next &&
		    strncmp(next, "dir=", 4) == 0 &&
		    strlen(next) > strlen(sdir) &&
		    strcmp(next + strlen(next) - strlen(sdir), sdir) == 0) {
			state_ok = true;
		}
	}
	/* sandboxed: no socket path on the command line; its state
	 * directory and its uid say whose it is */
	if (!ctrl_ok && ctrl_fd && state_ok) {
		snprintf(p, sizeof(p), "/proc/%d", (int) pid);
		if (sbx_lookup(cfg, uuid, &uid) < 0) {
			snprintf(
			    err, errlen,
			    "pid %d is a sandboxed swtpm, but %s has no uid "
			    "in the uid map",
			    (int) pid, uuid);
			return -1;
		}
		if (stat(p, &sb) < 0 || sb.st_uid != uid) {
			snprintf(
			    err, errlen,
			    "pid %d serves %s's state but runs as uid %d, not "
			    "the VM's uid %u",
			    (int) pid, uuid, (int) sb.st_uid, (unsigned) uid);
			return -1;
		}
		ctrl_ok = true;
	}
	if (!socket_mode || !ctrl_ok) {
		snprintf(err, errlen,
		         "pid %d is a swtpm, but not the one serving %s",
		         (int) pid, ctrl);
		return -1;
	}
	if (stat(ctrl, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a socket", ctrl);
		return -1;
	}
	return 0;
}

bool
adopt_live_swtpm(const struct launcher_cfg *cfg, const char *uuid, pid_t *pid)
{
	char        path[PATH_LEN], p[64], exe[PATH_LEN];
	ssize_t     n;
	struct stat sb;
	uid_t       uid;

	if (path_join(path, sizeof(path), "%s/%s.pid", cfg->swtpm_dir, uuid) <
	        0 ||
	    adopt_read_pidfile(path, pid) < 0) {
		return false;
	}
	snprintf(p, sizeof(p), "/proc/%d/exe", (int) *pid);
	if ((n = readlink(p, exe, sizeof(exe) - 1)) < 0) {
		return false;
	}
	exe[n] = '\0';
	if (!is_swtpm_exe(exe, cfg->swtpm)) {
		return false;
	}
	/* sandboxed, the pid file is ours and outlives a swtpm that ended
	 * while no launcher ran: a recycled pid of another VM's swtpm runs
	 * as another uid */
	if (cfg->sandbox && sbx_lookup(cfg, uuid, &uid) == 0) {
		snprintf(p, sizeof(p), "/proc/%d", (int) *pid);
		return stat(p, &sb) == 0 && sb.st_uid == uid;
	}
	return true;
}

int
adopt_write_meta(const struct launcher_cfg *cfg, const struct vtpm_status *st)
{
	char  path[PATH_LEN], tmp[PATH_LEN + 8];
	FILE *f;

	if (path_join(path, sizeof(path), "%s/%s.meta", cfg->swtpm_dir,
	              st->uuid) < 0 ||
	    path_join(tmp, sizeof(tmp), "%s.tmp", path) < 0) {
		return -1;
	}
	if ((f = fopen(tmp, "we")) == NULL) {
		log_warn("%s: %s", st->uuid, tmp);
		return -1;
	}
	fprintf(f, "%d %d %d %d %d\n%s\n%s\n", st->model, st->mode, st->health,
	        st->encrypted ? 1 : 0, 0, st->name, st->reason);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		log_warn("%s: %s", st->uuid, path);
		(void) unlink(tmp);
		return -1;
	}
	return 0;
}

int
adopt_read_meta(const struct launcher_cfg *cfg, const char *uuid,
                struct vtpm_status *st)
{
	char  path[PATH_LEN], line[REASON_LEN + 2];
	FILE *f;
	int   model, mode, health, enc, spare;

	if (path_join(path, sizeof(path), "%s/%s.meta", cfg->swtpm_dir, uuid) <
	        0 ||
	    (f = fopen(path, "re")) == NULL) {
		return -1;
	}
	if (fscanf(f, "%d %d %d %d %d\n", &model, &mode, &health, &enc,
	           &spare) != 5 ||
	    model < VTPM_MODEL_TIS || model > VTPM_MODEL_CRB ||
	    mode < VTPM_MODE_PERSISTENT || mode > VTPM_MODE_EPHEMERAL ||
	    health < STATE_NEW || health > STATE_UNKNOWN) {
		fclose(f);
		return -1;
	}
	st->model = model;
	st->mode = mode;
	st->health = health;
	st->encrypted = enc != 0;
	if (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		vm_strcpy(st->name, line, sizeof(st->name));
	}
	fclose(f);
	return 0;
}

int
adopt_scan(const struct launcher_cfg *cfg,
           void (*fn)(void *arg, const struct vtpm_status *st, pid_t pid,
                      int pidfd),
           void *arg)
{
	DIR           *d;
	struct dirent *e;
	int            n = 0;

	if ((d = opendir(cfg->swtpm_dir)) == NULL) {
		return errno == ENOENT ? 0 : -1;
	}
	while ((e = readdir(d)) != NULL) {
		char               uuid[UUID_LEN], path[PATH_LEN], err[256];
		size_t             l = strlen(e->d_name);
		pid_t              pid;
		int                pidfd;
		struct vtpm_status st;

		if (l != 36 + 4 || strcmp(e->d_name + 36, ".pid") != 0) {
			continue;
		}
		memcpy(uuid, e->d_name, 36);
		uuid[36] = '\0';
		if (!uuid_valid(uuid) ||
		    path_join(path, sizeof(path), "%s/%s", cfg->swtpm_dir,
		              e->d_name) < 0) {
			continue;
		}
		if (adopt_read_pidfile(path, &pid) < 0) {
			log_warnx("%s: not adopted: %s: %s", uuid, path,
			          strerror(errno));
			sup_cleanup_files(cfg, uuid);
			continue;
		}
		if (adopt_check(cfg, uuid, pid, err, sizeof(err)) < 0) {
			log_warnx("%s: not adopted: %s", uuid, err);
			/* leave the files of a live stranger alone */
			if (kill(pid, 0) < 0 && errno == ESRCH) {
				sup_cleanup_files(cfg, uuid);
			}
			continue;
		}
		if ((pidfd = pidfd_open(pid, 0)) < 0) {
			log_warn("%s: not adopted: pidfd_open %d", uuid,
			         (int) pid);
			continue;
		}
		/* the pid could have been reused between check and open */
		if (adopt_check(cfg, uuid, pid, err, sizeof(err)) < 0) {
			log_warnx("%s: not adopted: %s", uuid, err);
			close(pidfd);
			continue;
		}
		memset(&st, 0, sizeof(st));
		memcpy(st.uuid, uuid, sizeof(st.uuid));
		st.state = VTPM_READY;
		st.health = STATE_UNKNOWN;
		if (adopt_read_meta(cfg, uuid, &st) < 0) {
			/* the meta file is written at READY: without it the
			 * start never finished (no health check), so no guest
			 * uses this swtpm; end it, the VM starts afresh */
			log_warnx(
			    "%s: swtpm %d never became READY (no %s.meta): "
			    "stopping it",
			    uuid, (int) pid, uuid);
			(void) pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
			(void) poll(&(struct pollfd){pidfd, POLLIN, 0}, 1,
			            2000);
			close(pidfd);
			sup_cleanup_files(cfg, uuid);
			continue;
		}
		st.pid = pid;
		(void) spawn_paths(cfg, uuid, st.ctrl_socket, NULL, NULL,
		                   sizeof(st.ctrl_socket));
		snprintf(st.reason, sizeof(st.reason),
		         "adopted after launcher restart");
		fn(arg, &st, pid, pidfd);
		n++;
	}
	closedir(d);
	return n;
}
