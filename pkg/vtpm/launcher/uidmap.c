/*
 * uidmap.c: one uid (and the gid of the same number) per VM from
 * --uid-range, recorded in <persist>/swtpm/.launcher-uids ("UUID UID" a line,
 * replaced on every change) so that a VM keeps its uid across launcher
 * restarts and reboots and a restarted launcher can check an adopted
 * swtpm's uid; given back when the VM's state is purged. A uid that a
 * live process holds is never handed out (a /proc scan, shared by the
 * starts of a second).
 */
#include "launcher.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int
sbx_map_load(struct sandbox *s, const struct launcher_cfg *cfg)
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
