/*
 * sandbox.c: every swtpm under its own uid, in its own namespaces.
 *
 * The uid map (uidmap.c): every VM gets one uid (and the gid of the same
 * number) from --uid-range, recorded so that it keeps it.
 *
 * Here: what the sandbox needs, checked at start (root, namespaces, the
 * files swtpm runs from and their permissions for the range's uids), the
 * launcher's own capabilities after start, and per VM the files made for
 * swtpm. The sandbox: the launcher creates the control socket (listening), the
 * pid file and the log file itself, owned by the VM's uid, and hands them
 * to swtpm as file descriptors; swtpm then needs no path outside its state
 * directory. The child (fork, single-threaded from here on, so only
 * system calls and stack buffers) makes new mount, network, IPC and UTS
 * namespaces, mounts a tmpfs on <run>/sandbox in its private mount
 * namespace, binds into it (read-only) the swtpm binary, its interpreter
 * and libraries (from `ld.so --list`, at start), /etc/ld.so.cache and
 * /dev/urandom, and (read-write, noexec) its state directory, each at its
 * own path, then pivot_root()s into it and unmounts the old root. Then
 * rlimits, the uid/gid (libcap-ng: no supplementary groups, no
 * capabilities, empty bounding set), no_new_privs, and exec. swtpm adds
 * its own seccomp filter (--seccomp action=kill).
 *
 * Anything that fails in the child is written into the swtpm log (which
 * is also its stdout and stderr) before it exits with status 127; the
 * launcher quotes the last lines of that log when swtpm ends early.
 */
#include "launcher.h"
#include "log.h"

#include <cap-ng.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- what swtpm needs to run ---- */

static int
add_file(struct sandbox *s, const char *path)
{
	for (int i = 0; i < s->nfiles; i++) {
		if (strcmp(s->files[i], path) == 0) {
			return 0;
		}
	}
	if (s->nfiles == SBX_MAX_FILES || strlen(path) >= PATH_LEN) {
		log_warnx("sandbox: too many files for swtpm (%s)", path);
		return -1;
	}
	vm_strcpy(s->files[s->nfiles++], path, PATH_LEN);
	return 0;
}

/* path (added already) is executed: it needs x, not r */
static void
mark_exec(struct sandbox *s, const char *path)
{
	for (int i = 0; i < s->nfiles; i++) {
		if (strcmp(s->files[i], path) == 0) {
			s->exec[i] = true;
		}
	}
}

/* The ELF interpreter (PT_INTERP) of path; "" for a static binary. */
static int
elf_interp(const char *path, char *interp, size_t len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int        fd = open(path, O_RDONLY | O_CLOEXEC);

	interp[0] = '\0';
	if (fd < 0) {
		return -1;
	}
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t) sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64) {
		close(fd);
		errno = ENOEXEC;
		return -1;
	}
	for (int i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph),
		          (off_t) (eh.e_phoff +
		                   (Elf64_Off) i * eh.e_phentsize)) !=
		    (ssize_t) sizeof(ph)) {
			break;
		}
		if (ph.p_type == PT_INTERP && ph.p_filesz < len &&
		    pread(fd, interp, ph.p_filesz, (off_t) ph.p_offset) ==
		        (ssize_t) ph.p_filesz) {
			interp[ph.p_filesz] = '\0';
			break;
		}
	}
	close(fd);
	return 0;
}

/* The libraries the dynamic loader resolves for bin: `INTERP --list BIN`
 * (what ldd does; the image has no ldd). */
static int
add_libs(struct sandbox *s, const char *bin, const char *interp)
{
	posix_spawn_file_actions_t fa;
	char   *argv[] = {(char *) interp, "--list", (char *) bin, NULL};
	char    out[16384], *line, *save = NULL;
	size_t  got = 0;
	ssize_t n;
	int     p[2], st, rv;
	pid_t   pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rv = posix_spawn(&pid, interp, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rv != 0) {
		close(p[0]);
		log_warnx("sandbox: %s --list %s: %s", interp, bin,
		          strerror(rv));
		return -1;
	}
	while (got < sizeof(out) - 1 &&
	       (n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0) {
		got += (size_t) n;
	}
	out[got] = '\0';
	close(p[0]);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		log_warnx("sandbox: %s --list %s failed", interp, bin);
		return -1;
	}
	/* "\tlibc.so.6 => /lib/.../libc.so.6 (0x...)" or "\t/lib64/ld..." */
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, "=> "), *path, *end;

		path = arrow != NULL ? arrow + 3 : line + strspn(line, " \t");
		if (path[0] != '/') {
			if (arrow != NULL && strstr(path, "not found")) {
				log_warnx("sandbox: %s: %s", bin, line);
				return -1;
			}
			continue; /* linux-vdso.so.1 */
		}
		if ((end = strchr(path, ' ')) != NULL) {
			*end = '\0';
		}
		if (add_file(s, path) < 0) {
			return -1;
		}
	}
	return 0;
}

/* bin and what it needs to run: a script's interpreter (one level), an
 * ELF binary's loader and libraries. */
static int
add_program(struct sandbox *s, const char *bin, int depth)
{
	char interp[PATH_LEN], head[PATH_LEN];
	int  fd;

	if (add_file(s, bin) < 0) {
		return -1;
	}
	mark_exec(s, bin);
	if ((fd = open(bin, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("sandbox: %s", bin);
		return -1;
	}
	ssize_t n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n >= 2 && head[0] == '#' && head[1] == '!' && depth == 0) {
		head[n] = '\0';
		char *p = head + 2 + strspn(head + 2, " \t");
		p[strcspn(p, " \t\n")] = '\0';
		return add_program(s, p, 1);
	}
	if (elf_interp(bin, interp, sizeof(interp)) < 0) {
		log_warnx("sandbox: %s is neither a script nor a 64-bit ELF "
		          "program",
		          bin);
		return -1;
	}
	if (interp[0] == '\0') {
		return 0; /* static */
	}
	if (add_file(s, interp) < 0) {
		return -1;
	}
	mark_exec(s, interp);
	return add_libs(s, bin, interp);
}

/* ---- permissions, as the swtpm uid would see them ---- */

static bool
may(const struct stat *sb, uid_t uid, gid_t gid, mode_t want)
{
	/* want is in "other" bits: 1 x, 2 w, 4 r */
	if (sb->st_uid == uid) {
		return (sb->st_mode & (want << 6)) == (want << 6);
	}
	if (sb->st_gid == gid) {
		return (sb->st_mode & (want << 3)) == (want << 3);
	}
	return (sb->st_mode & want) == want;
}

static void
describe(char *out, size_t len, const char *path, const struct stat *sb)
{
	strfmt(out, len, "%s is mode %04o owned by uid %u gid %u", path,
	       (unsigned) (sb->st_mode & 07777), (unsigned) sb->st_uid,
	       (unsigned) sb->st_gid);
}

int
sbx_reach(const char *path, uid_t uid, gid_t gid, bool use, const char *why,
          char *err, size_t errlen)
{
	char        p[PATH_LEN], what[PATH_LEN + 64];
	struct stat sb;
	size_t      i;

	vm_strcpy(p, path, sizeof(p));
	/* every ancestor needs search permission */
	for (i = 1; p[i] != '\0'; i++) {
		if (p[i] != '/') {
			continue;
		}
		p[i] = '\0';
		if (stat(p, &sb) < 0) {
			strfmt(err, errlen, "%s %s: %s: %s", why, path, p,
			       strerror(errno));
			return -1;
		}
		if (!may(&sb, uid, gid, 1)) {
			describe(what, sizeof(what), p, &sb);
			strfmt(err, errlen,
			       "swtpm uid %u cannot reach %s %s: %s (no search "
			       "permission for uid %u)",
			       (unsigned) uid, why, path, what, (unsigned) uid);
			return -1;
		}
		p[i] = '/';
	}
	if (stat(path, &sb) < 0) {
		strfmt(err, errlen, "%s %s: %s", why, path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(sb.st_mode) && !may(&sb, uid, gid, use ? 7 : 1)) {
		describe(what, sizeof(what), path, &sb);
		strfmt(err, errlen,
		       "swtpm uid %u cannot use %s: %s (needs %s for uid %u)",
		       (unsigned) uid, why, what, use ? "rwx" : "search",
		       (unsigned) uid);
		return -1;
	}
	return 0;
}

/* The files bound into the sandbox, as the swtpm uid (lo: any uid of
 * the range is "other" to them) must be able to use them. */
static int
check_files(const struct sandbox *s, const struct launcher_cfg *cfg)
{
	struct stat sb;
	char        what[PATH_LEN + 64];

	for (int i = 0; i < s->nfiles; i++) {
		/* the binary, its ELF loader and a script's interpreter
		 * are executed, libraries and scripts read */
		bool   exe = s->exec[i];
		mode_t want = exe ? 1 : 4;

		if (stat(s->files[i], &sb) < 0) {
			log_warn("sandbox: %s", s->files[i]);
			return -1;
		}
		if (!may(&sb, cfg->uid_lo, cfg->uid_lo, want)) {
			describe(what, sizeof(what), s->files[i], &sb);
			log_warnx("swtpm uids %u-%u cannot %s %s: %s",
			          (unsigned) cfg->uid_lo,
			          (unsigned) cfg->uid_hi,
			          exe ? "execute" : "read", s->files[i], what);
			return -1;
		}
	}
	return 0;
}

/* Can this kernel (and our privileges) make the namespaces? */
static int
probe(void)
{
	pid_t pid = fork();
	int   st;

	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		_exit(unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
		              CLONE_NEWUTS) < 0
		          ? errno
		          : 0);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st)) {
		return -1;
	}
	errno = WEXITSTATUS(st);
	return errno == 0 ? 0 : -1;
}

/* Root and namespaces (sandboxed): 0 or -1 (logged). */
static int
can_sandbox(void)
{
	if (geteuid() != 0) {
		log_warnx(
		    "the swtpm sandbox needs root (namespaces, uids): run "
		    "as root or pass --no-sandbox");
		return -1;
	}
	if (probe() < 0) {
		log_warnx("cannot make mount/network/IPC/UTS namespaces (%s): "
		          "pass --no-sandbox on this machine",
		          strerror(errno));
		return -1;
	}
	return 0;
}

/* The files bound into every sandbox, checked for the range's uids. */
static int
collect_files(struct sandbox *s, const struct launcher_cfg *cfg)
{
	if (add_program(s, cfg->swtpm, 0) < 0) {
		return -1;
	}
	if (access("/etc/ld.so.cache", R_OK) == 0 &&
	    add_file(s, "/etc/ld.so.cache") < 0) {
		return -1;
	}
	if (add_file(s, "/dev/urandom") < 0 || check_files(s, cfg) < 0) {
		return -1;
	}
	return 0;
}

int
sbx_check(const struct launcher_cfg *cfg)
{
	struct sandbox *s;
	int             rc;

	if (!cfg->sandbox) {
		return 0;
	}
	if (can_sandbox() < 0 || (s = calloc(1, sizeof(*s))) == NULL) {
		return -1;
	}
	rc = collect_files(s, cfg);
	free(s);
	return rc;
}

int
sbx_open(struct launcher_cfg *cfg)
{
	struct sandbox *s;

	if (!cfg->sandbox) {
		char err[REASON_LEN];

		/* swtpm opens its files by path as the swtpm uid */
		if (!cfg->runas) {
			return 0;
		}
		if (sbx_reach(cfg->swtpm_dir, cfg->swtpm_uid, cfg->swtpm_gid,
		              true, "run directory", err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return -1;
		}
		if (sbx_reach(cfg->paths.state, cfg->swtpm_uid, cfg->swtpm_gid,
		              false, "state directories in", err,
		              sizeof(err)) < 0) {
			log_warnx("%s: every persistent VM will fail", err);
		}
		return 0;
	}
	if (can_sandbox() < 0 || (s = calloc(1, sizeof(*s))) == NULL) {
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->scan_mu, NULL);
	cfg->sbx = s;
	/* the map lives with the state directories whose owners it names
	 * (EVE persists only <persist>/swtpm) */
	if (path_join(s->mapfile, sizeof(s->mapfile), "%s/.launcher-uids",
	              cfg->paths.state) < 0 ||
	    path_join(s->root, sizeof(s->root), "%s/sandbox", cfg->paths.run) <
	        0) {
		return -1;
	}
	if (mkdir_p(s->root, 0700) < 0) {
		log_warn("mkdir %s", s->root);
		return -1;
	}
	if (sbx_map_load(s, cfg) < 0 || collect_files(s, cfg) < 0) {
		return -1;
	}
	log_debug("sandbox: %d files bound for swtpm, %zu VMs in the uid map",
	          s->nfiles, s->nents);
	return 0;
}

void
sbx_close(struct launcher_cfg *cfg)
{
	if (cfg->sbx == NULL) {
		return;
	}
	pthread_mutex_destroy(&cfg->sbx->mu);
	pthread_mutex_destroy(&cfg->sbx->scan_mu);
	free(cfg->sbx->users);
	free(cfg->sbx->ents);
	free(cfg->sbx);
	cfg->sbx = NULL;
}

/* ---- the launcher's own privileges ---- */

int
sbx_drop_caps(const struct launcher_cfg *cfg)
{
	/* what the launcher uses after start; everything else goes, from
	 * the bounding set too, so no child can get it back */
	static const int sandboxed[] = {
	    CAP_SYS_ADMIN,    /* namespaces, mounts, pivot_root for swtpm */
	    CAP_SETUID,       /* swtpm's uid */
	    CAP_SETGID,       /* swtpm's gid, no groups */
	    CAP_SETPCAP,      /* swtpm's empty bounding set */
	    CAP_CHOWN,        /* state dirs, sockets, pid files to the uid */
	    CAP_FOWNER,       /* chmod of state dirs other uids own */
	    CAP_DAC_OVERRIDE, /* their files and control sockets (0600) */
	    CAP_KILL,         /* signals to swtpm processes of other uids */
	    CAP_SYS_PTRACE,   /* /proc/PID/exe of them, for adoption */
	    CAP_IPC_LOCK,     /* mlock of key buffers (secmem) */
	};
	static const int plain[] = {
	    CAP_SETUID,       CAP_SETGID, CAP_CHOWN,      CAP_FOWNER,
	    CAP_DAC_OVERRIDE, CAP_KILL,   CAP_SYS_PTRACE, CAP_IPC_LOCK,
	};
	const int *keep = cfg->sandbox ? sandboxed : plain;
	size_t     n = cfg->sandbox ? sizeof(sandboxed) / sizeof(sandboxed[0])
	                            : sizeof(plain) / sizeof(plain[0]);
	char       kept[512] = "";
	size_t     used = 0;
	bool       have[64] = {false};

	if (geteuid() != 0) {
		return 0;
	}
	capng_get_caps_process();
	for (size_t i = 0; i < n; i++) {
		/* a runtime may have withheld one already: keep what is there
		 * (what is missing fails the VM with its own error later) */
		have[keep[i]] = capng_have_capability(CAPNG_PERMITTED,
		                                      (unsigned) keep[i]) != 0;
	}
	capng_clear(CAPNG_SELECT_BOTH);
	for (size_t i = 0; i < n; i++) {
		const char *name = capng_capability_to_name((unsigned) keep[i]);

		if (!have[keep[i]]) {
			log_warnx(
			    "capability %s is not available: what needs it "
			    "will fail",
			    name != NULL ? name : "?");
			continue;
		}
		capng_update(CAPNG_ADD,
		             CAPNG_EFFECTIVE | CAPNG_PERMITTED |
		                 CAPNG_BOUNDING_SET,
		             (unsigned) keep[i]);
		used +=
		    (size_t) snprintf(kept + used, sizeof(kept) - used, "%s%s",
		                      used ? "," : "", name ? name : "?");
	}
	if (capng_apply(CAPNG_SELECT_BOTH) != 0) {
		log_warnx("cannot drop capabilities (libcap-ng capng_apply)");
		return -1;
	}
	log_info("capabilities kept: %s", kept);
	return 0;
}

/* ---- per VM ---- */

int
sbx_own_state(const char *dir, uid_t uid, char *err, size_t errlen)
{
	DIR           *d;
	struct dirent *e;
	struct stat    sb;
	int            dfd, rc = 0;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
	    0) {
		strfmt(err, errlen, "state directory %s: %s", dir,
		       strerror(errno));
		return -1;
	}
	if (fstat(dfd, &sb) < 0 ||
	    ((sb.st_uid != uid || sb.st_gid != uid) &&
	     fchown(dfd, uid, uid) < 0) ||
	    ((sb.st_mode & 07777) != 0700 && fchmod(dfd, 0700) < 0)) {
		strfmt(err, errlen, "give state directory %s to uid %u: %s",
		       dir, (unsigned) uid, strerror(errno));
		close(dfd);
		return -1;
	}
	if ((d = fdopendir(dfd)) == NULL) {
		strfmt(err, errlen, "state directory %s: %s", dir,
		       strerror(errno));
		close(dfd);
		return -1;
	}
	/* swtpm's files (and what the guardian or a restore left) */
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0 ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) <
		        0 ||
		    !S_ISREG(sb.st_mode) ||
		    (sb.st_uid == uid && sb.st_gid == uid)) {
			continue;
		}
		if (fchownat(dirfd(d), e->d_name, uid, uid,
		             AT_SYMLINK_NOFOLLOW) < 0) {
			strfmt(err, errlen, "give %s/%s to uid %u: %s", dir,
			       e->d_name, (unsigned) uid, strerror(errno));
			rc = -1;
			break;
		}
	}
	closedir(d);
	return rc;
}

int
sbx_listen(const char *path, uid_t uid, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int                fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		strfmt(err, errlen, "control socket path %s too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	(void) unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || chown(path, uid, uid) < 0 ||
	    listen(fd, 8) < 0) {
		strfmt(err, errlen, "control socket %s: %s", path,
		       strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

int
sbx_open_file(const char *path, uid_t uid, char *err, size_t errlen)
{
	int fd;

	(void) unlink(path);
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	               0600)) < 0 ||
	    fchown(fd, uid, uid) < 0) {
		strfmt(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

void
sbx_log_tail(const char *logf, int lines, char *out, size_t len)
{
	char  *buf, *p;
	size_t n;
	int    seen = 0;

	out[0] = '\0';
	if (read_file(logf, 1 << 20, &buf, &n) < 0) {
		return;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
		buf[--n] = '\0';
	}
	for (p = buf + n; p > buf; p--) {
		if (p[-1] == '\n' && ++seen == lines) {
			break;
		}
	}
	/* one line in the reason: newlines become " | " */
	size_t o = 0;
	for (; *p != '\0' && o + 4 < len; p++) {
		if (*p == '\n') {
			memcpy(out + o, " | ", 3);
			o += 3;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	free(buf);
}
