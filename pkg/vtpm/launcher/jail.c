/*
 * jail.c: the child side of the sandbox (see sandbox.c): after fork, in
 * one thread, with only system calls and stack buffers: new namespaces,
 * the tmpfs root with its bind mounts, pivot_root, rlimits, the VM's uid
 * with no capabilities, no_new_privs, exec swtpm. Anything that fails is
 * written to the swtpm log (its stderr) before the child exits 127.
 */
#include "launcher.h"
#include "log.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The child's error: into the log (its stderr), then exit. Stack only. */
static void __attribute__((noreturn)) die(const char *what, const char *path)
{
	char buf[PATH_LEN + 128];
	int  e = errno;
	int  n = snprintf(buf, sizeof(buf), "sandbox: %s%s%s: %s\n", what,
                         path ? " " : "", path ? path : "", strerror(e));

	if (n > 0) {
		(void) !write(2, buf,
		              (size_t) n < sizeof(buf) ? (size_t) n
		                                       : sizeof(buf));
	}
	_exit(SBX_CHILD_FAIL);
}

/* mkdir -p of the parents of path (inside the new tmpfs) */
static void
mkparents(char *path)
{
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST) {
				die("mkdir", path);
			}
			*p = '/';
		}
	}
}

static void
bind_in(const char *root, const char *src, bool dir, unsigned long flags)
{
	char dst[PATH_LEN * 2];
	int  fd;

	snprintf(dst, sizeof(dst), "%s%s", root, src);
	mkparents(dst);
	if (dir) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
			die("mkdir", dst);
		}
	} else if ((fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >=
	           0) {
		close(fd);
	} else if (errno != EEXIST) {
		die("create", dst);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
		die("bind", src);
	}
	if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0) {
		die("remount", src);
	}
}

/* Move fds[i] to i (0..n-1) whatever their numbers, close the rest. */
static void
place_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0 &&
		    (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0) {
			die("dup", NULL);
		}
	}
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0) {
			(void) close(i);
		} else if (dup2(fds[i], i) < 0) {
			die("dup2", NULL);
		}
	}
	(void) syscall(SYS_close_range, (unsigned) n, ~0U, 0);
}

static void __attribute__((noreturn))
child(const struct launcher_cfg *cfg, const char *state_dir, uid_t uid,
      int *fds, int nfds, char **argv)
{
	const struct sandbox *s = cfg->sbx;
	struct sigaction      dfl = {.sa_handler = SIG_DFL};
	sigset_t              none;
	struct rlimit         rl;
	char                 *envp[] = {"PATH=/usr/bin:/bin", NULL};

	for (int sig = 1; sig < NSIG; sig++) {
		(void) sigaction(sig, &dfl, NULL);
	}
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);
	place_fds(fds, nfds); /* stderr is the log from here on */
	/* the directories of the new root must be searchable whatever the
	 * launcher's umask (the image's init runs with 077) */
	umask(0);
	if (setsid() < 0) {
		die("setsid", NULL);
	}
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) <
	    0) {
		die("unshare", NULL);
	}
	/* nothing we mount leaks back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		die("make / private", NULL);
	}
	if (mount("swtpm", s->root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          "mode=0755,size=64k,nr_inodes=256") < 0) {
		die("mount tmpfs on", s->root);
	}
	for (int i = 0; i < s->nfiles; i++) {
		bool dev = strncmp(s->files[i], "/dev/", 5) == 0;
		bind_in(s->root, s->files[i], false,
		        MS_RDONLY | MS_NOSUID | (dev ? MS_NOEXEC : MS_NODEV));
	}
	bind_in(s->root, state_dir, true, MS_NOSUID | MS_NODEV | MS_NOEXEC);
	if (chdir(s->root) < 0) {
		die("chdir", s->root);
	}
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		die("pivot_root", s->root);
	}
	/* the old root was stacked under the new one: detach it */
	if (umount2(".", MNT_DETACH) < 0) {
		die("umount the old root", NULL);
	}
	if (chdir("/") < 0) {
		die("chdir /", NULL);
	}
	if (mount(NULL, "/", NULL,
	          MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          NULL) < 0) {
		die("remount / read-only", NULL);
	}
	if (sethostname("swtpm", 5) < 0) {
		die("sethostname", NULL);
	}
	rl.rlim_cur = rl.rlim_max = (rlim_t) cfg->rlim_nofile;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		die("RLIMIT_NOFILE", NULL);
	}
	rl.rlim_cur = rl.rlim_max = cfg->rlim_as_mb > 0
	                                ? (rlim_t) cfg->rlim_as_mb << 20
	                                : RLIM_INFINITY;
	if (setrlimit(RLIMIT_AS, &rl) < 0) {
		die("RLIMIT_AS", NULL);
	}
	rl.rlim_cur = rl.rlim_max = (rlim_t) cfg->rlim_core_mb << 20;
	if (setrlimit(RLIMIT_CORE, &rl) < 0) {
		die("RLIMIT_CORE", NULL);
	}
	/* uid and gid, no supplementary groups, no capabilities in any set
	 * (bounding and ambient included) */
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_change_id((int) uid, (int) uid,
	                    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING |
	                        CAPNG_CLEAR_AMBIENT) != 0) {
		errno = EPERM;
		die("drop to uid", NULL);
	}
	if (getuid() != uid || geteuid() != uid || getgid() != uid ||
	    capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
		errno = EPERM;
		die("privileges still held after the drop", NULL);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		die("no_new_privs", NULL);
	}
	umask(077); /* what swtpm writes is its own */
	execve(cfg->swtpm, argv, envp);
	die("exec", cfg->swtpm);
}

int
sbx_spawn(const struct launcher_cfg *cfg, const char *state_dir, uid_t uid,
          int *fds, int nfds, char **argv, pid_t *pid, char *err, size_t errlen)
{
	pid_t p = fork();

	if (p < 0) {
		strfmt(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (p == 0) {
		child(cfg, state_dir, uid, fds, nfds, argv);
	}
	*pid = p;
	return 0;
}
