/*
 * sandbox.c: every swtpm under its own uid, in its own namespaces.
 *
 * The uid map: every VM gets one uid (and the gid of the same number)
 * from --uid-range, recorded in <persist>/launcher/uids ("UUID UID" a
 * line, written durably on every change) so that a VM keeps its uid
 * across launcher restarts and reboots, and a restarted launcher can
 * check an adopted swtpm's uid. A uid is given back when the VM's state
 * is purged.
 *
 * The sandbox: the launcher creates the control socket (listening), the
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

#define SBX_MAX_FILES  32 /* binary, interpreter, libraries, devices */
#define SBX_CHILD_FAIL 127
#define SBX_SCAN_MS    1000 /* /proc scans for uid users, at most every */

extern char **environ;

struct uid_ent {
	char  uuid[UUID_LEN];
	uid_t uid;
};

/* a process of the range's uids, from the last /proc scan */
struct uid_user {
	uid_t uid;
	pid_t pid;
};

struct sandbox {
	pthread_mutex_t  scan_mu; /* users, nusers, scanned_ms */
	struct uid_user *users;
	size_t           nusers, users_cap;
	uint64_t         scanned_ms;
	pthread_mutex_t  mu; /* the uid map */
	struct uid_ent  *ents;
	size_t           nents, cap;
	char             mapfile[PATH_LEN];
	char             root[PATH_LEN]; /* <run>/sandbox: the tmpfs mount */
	/* read-only binds: source (may be a symlink) -> same path inside */
	char files[SBX_MAX_FILES][PATH_LEN];
	bool
	    exec[SBX_MAX_FILES]; /* executed (binary, interpreters), not read */
	int nfiles;
};

/* ---- the uid map ---- */

/* Atomic against a crash of the launcher (temp file, rename), not
 * fsynced: losing the newest entries to a power cut is harmless, the VM
 * gets a uid again and its state directory is given to that one at its
 * start (sbx_own_state), while an fsync per new VM cost a first boot
 * several ms. */
static int
replace_file(const char *path, const char *buf, size_t len)
{
	char tmp[PATH_LEN + 8];
	int  fd, saved;

	if (path_join(tmp, sizeof(tmp), "%s.tmp", path) < 0 ||
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	        0) {
		return -1;
	}
	if (write(fd, buf, len) != (ssize_t) len || close(fd) < 0 ||
	    rename(tmp, path) < 0) {
		saved = errno;
		(void) unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

static int
map_save(struct sandbox *s, char *err, size_t errlen)
{
	size_t len = s->nents * (UUID_LEN + 16) + 1, used = 0;
	char  *buf = malloc(len);
	int    rc;

	if (buf == NULL) {
		strfmt(err, errlen, "uid map: out of memory");
		return -1;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < s->nents; i++) {
		used += (size_t) snprintf(buf + used, len - used, "%s %u\n",
		                          s->ents[i].uuid,
		                          (unsigned) s->ents[i].uid);
	}
	rc = replace_file(s->mapfile, buf, used);
	free(buf);
	if (rc < 0) {
		strfmt(err, errlen, "uid map %s: %s", s->mapfile,
		       strerror(errno));
	}
	return rc;
}

static int
map_load(struct sandbox *s, const struct launcher_cfg *cfg)
{
	char  *buf, *line, *save = NULL;
	size_t len;

	if (read_file(s->mapfile, 1 << 22, &buf, &len) < 0) {
		if (errno == ENOENT) {
			return 0;
		}
		log_warn("uid map %s", s->mapfile);
		return -1;
	}
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char     uuid[UUID_LEN];
		unsigned uid;

		if (sscanf(line, "%36s %u", uuid, &uid) != 2 ||
		    !uuid_valid(uuid)) {
			log_warnx("uid map %s: ignoring line \"%s\"",
			          s->mapfile, line);
			continue;
		}
		if (uid < cfg->uid_lo || uid > cfg->uid_hi) {
			/* the range changed: this VM gets a new uid (and its
			 * state directory is given to it at its next start) */
			log_warnx("uid map %s: %s has uid %u outside "
			          "--uid-range %u-%u: forgotten",
			          s->mapfile, uuid, uid, (unsigned) cfg->uid_lo,
			          (unsigned) cfg->uid_hi);
			continue;
		}
		if (s->nents == s->cap) {
			size_t          ncap = s->cap ? s->cap * 2 : 64;
			struct uid_ent *n =
			    realloc(s->ents, ncap * sizeof(*s->ents));
			if (n == NULL) {
				free(buf);
				return -1;
			}
			s->ents = n;
			s->cap = ncap;
		}
		vm_strcpy(s->ents[s->nents].uuid, uuid, UUID_LEN);
		s->ents[s->nents++].uid = (uid_t) uid;
	}
	free(buf);
	return 0;
}

static struct uid_ent *
map_find(struct sandbox *s, const char *uuid)
{
	for (size_t i = 0; i < s->nents; i++) {
		if (strcasecmp(s->ents[i].uuid, uuid) == 0) {
			return &s->ents[i];
		}
	}
	return NULL;
}

static bool
map_taken(struct sandbox *s, uid_t uid)
{
	for (size_t i = 0; i < s->nents; i++) {
		if (s->ents[i].uid == uid) {
			return true;
		}
	}
	return false;
}

/* A short /proc file (they report size 0) into buf; "" on error. */
static void
proc_read(const char *path, char *buf, size_t len)
{
	int     fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0) {
		close(fd);
	}
}

/* A zombie holds no resources: its uid is free (a pid 1 that does not
 * reap leaves adopted swtpm processes as zombies). */
static bool
zombie(const char *pid)
{
	char path[300], st[512], *p;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	proc_read(path, st, sizeof(st));
	p = strrchr(st, ')');
	return p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

void
sbx_comm(pid_t pid, char *comm, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
	proc_read(path, comm, len);
	comm[strcspn(comm, "\n")] = '\0';
}

/* Every live process whose effective uid (the owner of /proc/PID) is
 * in the range. */
static void
scan_users(struct sandbox *s, const struct launcher_cfg *cfg)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	struct stat    sb;

	s->nusers = 0;
	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    fstatat(dirfd(d), e->d_name, &sb, 0) < 0 ||
		    sb.st_uid < cfg->uid_lo || sb.st_uid > cfg->uid_hi ||
		    zombie(e->d_name)) {
			continue;
		}
		if (s->nusers == s->users_cap) {
			size_t ncap = s->users_cap ? s->users_cap * 2 : 64;
			struct uid_user *n =
			    realloc(s->users, ncap * sizeof(*s->users));
			if (n == NULL) {
				break;
			}
			s->users = n;
			s->users_cap = ncap;
		}
		s->users[s->nusers].uid = sb.st_uid;
		s->users[s->nusers++].pid = (pid_t) atoi(e->d_name);
	}
	closedir(d);
}

pid_t
sbx_uid_user(const struct launcher_cfg *cfg, uid_t uid)
{
	struct sandbox *s = cfg->sbx;
	pid_t           pid = 0;
	char            name[16], path[32];
	struct stat     sb;

	/* one /proc scan serves every start within SBX_SCAN_MS (a storm of
	 * 256 starts would otherwise scan 256 times); a process found is
	 * checked again below, one that appeared since the scan is seen by
	 * the next scan */
	pthread_mutex_lock(&s->scan_mu);
	if (s->scanned_ms == 0 || now_ms() - s->scanned_ms > SBX_SCAN_MS) {
		scan_users(s, cfg);
		s->scanned_ms = now_ms();
	}
	for (size_t i = 0; i < s->nusers && pid == 0; i++) {
		if (s->users[i].uid == uid) {
			pid = s->users[i].pid;
		}
	}
	pthread_mutex_unlock(&s->scan_mu);
	if (pid == 0) {
		return 0;
	}
	snprintf(name, sizeof(name), "%d", (int) pid);
	snprintf(path, sizeof(path), "/proc/%d", (int) pid);
	if (stat(path, &sb) < 0 || sb.st_uid != uid || zombie(name)) {
		return 0; /* gone since the scan */
	}
	return pid;
}

int
sbx_uid(const struct launcher_cfg *cfg, const char *uuid, uid_t *uid, char *err,
        size_t errlen)
{
	struct sandbox *s = cfg->sbx;
	struct uid_ent *e;
	int             rc = 0;

	pthread_mutex_lock(&s->mu);
	if ((e = map_find(s, uuid)) != NULL) {
		*uid = e->uid;
		goto out;
	}
	if (s->nents == s->cap) {
		size_t          ncap = s->cap ? s->cap * 2 : 64;
		struct uid_ent *n = realloc(s->ents, ncap * sizeof(*s->ents));
		if (n == NULL) {
			strfmt(err, errlen, "uid map: out of memory");
			rc = -1;
			goto out;
		}
		s->ents = n;
		s->cap = ncap;
	}
	/* the lowest uid nobody holds: not mapped, no process uses it */
	for (uint64_t u = cfg->uid_lo; u <= cfg->uid_hi; u++) {
		if (!map_taken(s, (uid_t) u) &&
		    sbx_uid_user(cfg, (uid_t) u) == 0) {
			vm_strcpy(s->ents[s->nents].uuid, uuid, UUID_LEN);
			s->ents[s->nents++].uid = (uid_t) u;
			if (map_save(s, err, errlen) < 0) {
				s->nents--;
				rc = -1;
				goto out;
			}
			*uid = (uid_t) u;
			log_info("%s: swtpm uid %u (recorded in %s)", uuid,
			         (unsigned) u, s->mapfile);
			goto out;
		}
	}
	strfmt(err, errlen,
	       "uid range %u-%u exhausted: %zu VMs hold a uid, every other "
	       "uid is used by another process (--uid-range)",
	       (unsigned) cfg->uid_lo, (unsigned) cfg->uid_hi, s->nents);
	rc = -1;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
sbx_lookup(const struct launcher_cfg *cfg, const char *uuid, uid_t *uid)
{
	struct uid_ent *e;
	int             rc = -1;

	if (cfg->sbx == NULL) {
		return -1;
	}
	pthread_mutex_lock(&cfg->sbx->mu);
	if ((e = map_find(cfg->sbx, uuid)) != NULL) {
		*uid = e->uid;
		rc = 0;
	}
	pthread_mutex_unlock(&cfg->sbx->mu);
	return rc;
}

void
sbx_forget(const struct launcher_cfg *cfg, const char *uuid)
{
	struct sandbox *s = cfg->sbx;
	struct uid_ent *e;
	char            err[REASON_LEN];

	if (s == NULL) {
		return;
	}
	pthread_mutex_lock(&s->mu);
	if ((e = map_find(s, uuid)) != NULL) {
		*e = s->ents[--s->nents];
		if (map_save(s, err, sizeof(err)) < 0) {
			log_warnx("%s: %s", uuid, err);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

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

int
sbx_open(struct launcher_cfg *cfg)
{
	struct sandbox *s;
	char            dir[PATH_LEN];

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
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->scan_mu, NULL);
	cfg->sbx = s;
	if (path_join(dir, sizeof(dir), "%s/launcher", cfg->paths.persist) <
	        0 ||
	    path_join(s->mapfile, sizeof(s->mapfile), "%s/uids", dir) < 0 ||
	    path_join(s->root, sizeof(s->root), "%s/sandbox", cfg->paths.run) <
	        0) {
		return -1;
	}
	if (mkdir_p(dir, 0700) < 0 || mkdir_p(s->root, 0700) < 0) {
		log_warn("mkdir %s", errno == 0 ? dir : s->root);
		return -1;
	}
	if (map_load(s, cfg) < 0 || add_program(s, cfg->swtpm, 0) < 0) {
		return -1;
	}
	if (access("/etc/ld.so.cache", R_OK) == 0 &&
	    add_file(s, "/etc/ld.so.cache") < 0) {
		return -1;
	}
	if (add_file(s, "/dev/urandom") < 0 || check_files(s, cfg) < 0) {
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
