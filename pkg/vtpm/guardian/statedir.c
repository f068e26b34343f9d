/* statedir.c: the VM table and the file operations on a VM's two
 * directories: create, link, copy back, reset, clean up (quarantine in
 * quarantine.c). Callers hold g->lock. */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"
#include "pubsub.h"

#include <sys/inotify.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Files swtpm 0.7.1 itself creates in its state directory. Anything else
 * is foreign: logged, left alone, removed only by purge. */
static const char *const swtpm_files[] = {GD_PERMALL,
                                          GD_PERMALL_TMP,
                                          "tpm2-00.volatilestate",
                                          "TMP2-00.volatilestate",
                                          "tpm2-00.savestate",
                                          "TMP2-00.savestate",
                                          ".lock",
                                          GD_RESTORE_TMP,
                                          NULL};

static bool
is_swtpm_file(const char *name)
{
	for (int i = 0; swtpm_files[i] != NULL; i++) {
		if (strcmp(name, swtpm_files[i]) == 0) {
			return true;
		}
	}
	return false;
}

int
gd_init(struct guardian *g, const char *root, uid_t swtpm_uid, gid_t swtpm_gid,
        bool do_chown)
{
	memset(g, 0, sizeof(*g));
	g->ifd = -1;
	g->swtpm_uid = swtpm_uid;
	g->swtpm_gid = swtpm_gid;
	g->do_chown = do_chown;
	g->commit_ms = GD_COMMIT_MS;
	g->quar_max_entries = GD_QUAR_MAX_ENTRIES;
	g->quar_max_bytes = GD_QUAR_MAX_BYTES;
	pthread_mutex_init(&g->lock, NULL);
	if (paths_init(&g->paths, root) < 0 || paths_mkdirs(&g->paths) < 0 ||
	    path_join(g->gdir, sizeof(g->gdir), "%s/guardian", g->paths.state) <
	        0) {
		return -1;
	}
	if (mkdir_p(g->gdir, 0700) < 0) {
		log_warn("mkdir %s", g->gdir);
		return -1;
	}
	if (do_chown) {
		/* the swtpm uid must traverse (not list) down to its dir */
		if (chmod(g->paths.persist, 0711) < 0 ||
		    chmod(g->paths.state, 0711) < 0) {
			log_warn("chmod 0711 %s", g->paths.state);
			return -1;
		}
	}
	return 0;
}

void
gd_fini(struct guardian *g)
{
	struct gd_vm *v, *next;

	for (v = g->vms; v != NULL; v = next) {
		next = v->next;
		free(v);
	}
	g->vms = NULL;
	if (g->ifd >= 0) {
		close(g->ifd);
		g->ifd = -1;
	}
	pthread_mutex_destroy(&g->lock);
}

struct gd_vm *
gd_vm_find(struct guardian *g, const char *uuid)
{
	for (struct gd_vm *v = g->vms; v != NULL; v = v->next) {
		if (strcasecmp(v->uuid, uuid) == 0) {
			return v;
		}
	}
	return NULL;
}

static int
vm_set_mode(struct guardian *g, struct gd_vm *v, int mode)
{
	v->mode = mode;
	if (mode == VTPM_MODE_EPHEMERAL) {
		v->mdir[0] = '\0';
		return paths_state_dir(&g->paths, true, v->uuid, v->sdir,
		                       sizeof(v->sdir));
	}
	if (paths_state_dir(&g->paths, false, v->uuid, v->sdir,
	                    sizeof(v->sdir)) < 0 ||
	    path_join(v->mdir, sizeof(v->mdir), "%s/%s", g->gdir, v->uuid) <
	        0) {
		return -1;
	}
	return 0;
}

/* Here rather than in watch.c: a VM record changing mode drops its watch,
 * and watch.c sits above this file. */
void
gd_watch_rm(struct guardian *g, struct gd_vm *v)
{
	if (g->ifd >= 0 && v->wd >= 0) {
		inotify_rm_watch(g->ifd, v->wd);
	}
	v->wd = -1;
}

struct gd_vm *
gd_vm_get(struct guardian *g, const char *uuid, int mode)
{
	struct gd_vm *v = gd_vm_find(g, uuid);

	if (v != NULL) {
		if (v->mode != mode) {
			if (v->wd >= 0) {
				gd_watch_rm(g, v);
			}
			if (vm_set_mode(g, v, mode) < 0) {
				return NULL;
			}
		}
		return v;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		return NULL;
	}
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	for (char *p = v->uuid; *p; p++) {
		if (*p >= 'A' && *p <= 'F') {
			*p = (char) (*p - 'A' + 'a');
		}
	}
	v->wd = -1;
	if (vm_set_mode(g, v, mode) < 0) {
		free(v);
		return NULL;
	}
	v->health.classification = STATE_UNKNOWN;
	v->next = g->vms;
	g->vms = v;
	return v;
}

void
gd_gen_path(const struct gd_vm *v, uint64_t id, char *dst, size_t len)
{
	snprintf(dst, len, "%s/g%" PRIu64 ".permall", v->mdir, id);
}

void
gd_sfile(const struct gd_vm *v, const char *name, char *dst, size_t len)
{
	snprintf(dst, len, "%s/%s", v->sdir, name);
}

static int
save(struct gd_vm *v, bool durable)
{
	char path[PATH_LEN];

	snprintf(path, sizeof(path), "%s/%s", v->mdir, GD_MANIFEST);
	if (gd_manifest_write(path, &v->m, durable) < 0) {
		log_warn("vm %s: write manifest %s", v->uuid, path);
		return -1;
	}
	v->have_manifest = true;
	return 0;
}

int
gd_save(struct guardian *g, struct gd_vm *v)
{
	(void) g;
	return save(v, true);
}

int
gd_save_quick(struct guardian *g, struct gd_vm *v)
{
	(void) g;
	return save(v, false);
}

/* ---- helpers on the two directories ---- */

int
gd_ensure_sdir(struct guardian *g, struct gd_vm *v, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(v->sdir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", v->sdir, strerror(errno));
		return -1;
	}
	if (lstat(v->sdir, &st) < 0) {
		snprintf(err, errlen, "stat %s: %s", v->sdir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state directory %s is not a directory",
		         v->sdir);
		return -1;
	}
	if (g->do_chown &&
	    (st.st_uid != g->swtpm_uid || st.st_gid != g->swtpm_gid) &&
	    chown(v->sdir, g->swtpm_uid, g->swtpm_gid) < 0) {
		snprintf(err, errlen, "chown %s: %s", v->sdir, strerror(errno));
		return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(v->sdir, 0700) < 0) {
		snprintf(err, errlen, "chmod %s: %s", v->sdir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Log foreign files; -1 when the directory cannot be read. */
int
gd_scan_foreign(struct gd_vm *v, char *err, size_t errlen)
{
	DIR           *d = opendir(v->sdir);
	struct dirent *e;

	if (d == NULL) {
		snprintf(err, errlen, "state directory %s: %s", v->sdir,
		         strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0 || is_swtpm_file(e->d_name)) {
			continue;
		}
		log_warnx("vm %s: foreign file %s/%s in the state directory: "
		          "ignored, kept until purge",
		          v->uuid, v->sdir, e->d_name);
	}
	closedir(d);
	return 0;
}

/* ids of the g<id>.permall files in mdir, descending */
int
gd_list_gens(const struct gd_vm *v, uint64_t *ids, int max)
{
	DIR           *d = opendir(v->mdir);
	struct dirent *e;
	int            n = 0;

	if (d == NULL) {
		return 0;
	}
	while ((e = readdir(d)) != NULL && n < max) {
		unsigned long long id;
		char               tail[16];
		if (sscanf(e->d_name, "g%llu.%15s", &id, tail) == 2 &&
		    strcmp(tail, "permall") == 0) {
			ids[n++] = id;
		}
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		for (int j = i + 1; j < n; j++) {
			if (ids[j] > ids[i]) {
				uint64_t t = ids[i];
				ids[i] = ids[j];
				ids[j] = t;
			}
		}
	}
	return n;
}

/* Remove files of mdir that the manifest does not reference: links of a
 * rotation that was interrupted, temp files of an interrupted write. */
void
gd_gc_mdir(struct gd_vm *v)
{
	DIR           *d = opendir(v->mdir);
	struct dirent *e;
	char           p[PATH_LEN];

	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		unsigned long long id;
		char               tail[16];
		bool               drop = false;
		if (sscanf(e->d_name, "g%llu.%15s", &id, tail) == 2 &&
		    strcmp(tail, "permall") == 0) {
			drop = !(v->m.cur.present && v->m.cur.id == id) &&
			       !(v->m.bak.present && v->m.bak.id == id);
		} else if (strncmp(e->d_name, GD_MANIFEST ".tmp.",
		                   sizeof(GD_MANIFEST ".tmp.") - 1) == 0 ||
		           (e->d_name[0] == 'g' &&
		            strstr(e->d_name, ".tmp.") != NULL)) {
			drop = true;
		}
		if (drop) {
			snprintf(p, sizeof(p), "%s/%s", v->mdir, e->d_name);
			log_info("vm %s: removing unreferenced %s (interrupted "
			         "rotation)",
			         v->uuid, p);
			unlink(p);
		}
	}
	closedir(d);
	snprintf(p, sizeof(p), "%s/%s", v->sdir, GD_RESTORE_TMP);
	unlink(p);
}

/* Copy src into the state directory as the current file (a new inode,
 * owned by the swtpm uid), durable. The old current file, if any, goes to
 * quarantine under what. */
int
gd_put_back(struct guardian *g, struct gd_vm *v, const char *src,
            const char *what, char *err, size_t errlen)
{
	char    tmp[PATH_LEN], cur[PATH_LEN];
	char   *buf;
	size_t  len;
	int     fd;
	ssize_t n;

	if (read_file(src, GD_STATE_MAX, &buf, &len) < 0) {
		snprintf(err, errlen, "read %s: %s", src, strerror(errno));
		return -1;
	}
	gd_sfile(v, GD_RESTORE_TMP, tmp, sizeof(tmp));
	gd_sfile(v, GD_PERMALL, cur, sizeof(cur));
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	n = write(fd, buf, len);
	free(buf);
	if (n != (ssize_t) len || fsync(fd) < 0 ||
	    (g->do_chown && fchown(fd, g->swtpm_uid, g->swtpm_gid) < 0)) {
		snprintf(err, errlen, "write %s: %s", tmp,
		         n >= 0 && n != (ssize_t) len ? "short write"
		                                      : strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (access(cur, F_OK) == 0) {
		const char *q[] = {cur};
		gd_quarantine(g, v, what, q, 1);
	}
	if (rename(tmp, cur) < 0 || fsync_dir(v->sdir) < 0) {
		snprintf(err, errlen, "rename %s: %s", cur, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Link the current swtpm file into mdir as a new id; fill gen. */
int
gd_link_current(struct gd_vm *v, struct gd_gen *gen, struct gd_info *fi,
                char *err, size_t errlen)
{
	char cur[PATH_LEN], dst[PATH_LEN];

	gd_sfile(v, GD_PERMALL, cur, sizeof(cur));
	gd_gen_path(v, v->m.next_id, dst, sizeof(dst));
	unlink(dst);
	if (link(cur, dst) < 0) {
		snprintf(err, errlen, "link %s %s: %s", cur, dst,
		         strerror(errno));
		return -1;
	}
	if (gd_file_info(dst, true, fi) < 0 || !fi->exists) {
		snprintf(err, errlen, "%s: %s", dst, fi->why);
		unlink(dst);
		return -1;
	}
	if (fsync_dir(v->mdir) < 0) {
		snprintf(err, errlen, "fsync %s: %s", v->mdir, strerror(errno));
		unlink(dst);
		return -1;
	}
	memset(gen, 0, sizeof(*gen));
	gen->present = true;
	gen->id = v->m.next_id++;
	gen->size = fi->size;
	memcpy(gen->sha, fi->sha, GD_SHA_LEN);
	gen->time = (int64_t) time(NULL);
	gen->ino = fi->ino;
	gen->mtime_ns = fi->mtime_ns;
	return 0;
}

/* Make a second, independent copy of the current generation as the
 * backup (when the recorded backup is missing or bad). */
int
gd_backup_copy(struct guardian *g, struct gd_vm *v, char *err, size_t errlen)
{
	char           src[PATH_LEN], dst[PATH_LEN];
	char          *buf;
	size_t         len;
	struct gd_info fi;

	(void) g;
	gd_gen_path(v, v->m.cur.id, src, sizeof(src));
	gd_gen_path(v, v->m.next_id, dst, sizeof(dst));
	if (read_file(src, GD_STATE_MAX, &buf, &len) < 0) {
		snprintf(err, errlen, "read %s: %s", src, strerror(errno));
		return -1;
	}
	if (durable_write(dst, buf, len, 0640) < 0) {
		snprintf(err, errlen, "write %s: %s", dst, strerror(errno));
		free(buf);
		return -1;
	}
	free(buf);
	if (gd_file_info(dst, false, &fi) < 0 ||
	    !gd_info_matches(&fi, &v->m.cur)) {
		snprintf(err, errlen, "copy %s does not verify", dst);
		unlink(dst);
		return -1;
	}
	v->m.bak = v->m.cur;
	v->m.bak.id = v->m.next_id++;
	v->m.bak.ino = fi.ino;
	v->m.bak.mtime_ns = fi.mtime_ns;
	v->m.bak.time = (int64_t) time(NULL);
	v->m.last_backup = v->m.bak.time;
	return 0;
}

void
gd_unlink_gen(struct gd_vm *v, uint64_t id)
{
	char p[PATH_LEN];

	if ((v->m.cur.present && v->m.cur.id == id) ||
	    (v->m.bak.present && v->m.bak.id == id)) {
		return; /* still referenced */
	}
	gd_gen_path(v, id, p, sizeof(p));
	unlink(p);
}

/* Fresh state: swtpm's files and our generations to quarantine. */
int
gd_do_reset(struct guardian *g, struct gd_vm *v, bool encrypted, int cls,
            const char *why)
{
	char               paths[8 + 64][PATH_LEN];
	const char        *pp[8 + 64];
	uint64_t           ids[64];
	int                n = 0, ng;
	struct gd_manifest old = v->m;

	for (int i = 0; swtpm_files[i] != NULL; i++) {
		if (strcmp(swtpm_files[i], ".lock") == 0) {
			continue;
		}
		gd_sfile(v, swtpm_files[i], paths[n], PATH_LEN);
		pp[n] = paths[n];
		n++;
	}
	ng = gd_list_gens(v, ids, 64);
	for (int i = 0; i < ng; i++) {
		gd_gen_path(v, ids[i], paths[n], PATH_LEN);
		pp[n] = paths[n];
		n++;
	}
	if (fsync_dir(v->sdir) < 0) {
		log_warn("vm %s: fsync %s", v->uuid, v->sdir);
	}
	gd_quarantine(g, v, cls == STATE_MISSING ? "missing" : "reset", pp, n);
	fsync_dir(v->sdir);
	gd_manifest_init(&v->m, v->uuid, encrypted);
	v->m.next_id = old.next_id > 0 ? old.next_id : 1;
	for (int i = 0; i < ng; i++) {
		if (ids[i] + 1 > v->m.next_id) {
			v->m.next_id = ids[i] + 1;
		}
	}
	v->m.generation = old.generation;
	v->m.resets = old.resets + 1;
	v->m.active = old.active;
	v->m.classification = cls;
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", why);
	log_error("vm %s: state %s: %s; the VM gets a fresh TPM", v->uuid,
	          cls == STATE_MISSING ? "missing" : "reset", why);
	return 0;
}

void
gd_fill_rep(const struct gd_vm *v, struct guardian_rep *rp, bool ok, int cls,
            const char *reason)
{
	snprintf(rp->uuid, sizeof(rp->uuid), "%s", v->uuid);
	rp->ok = ok;
	rp->classification = cls;
	snprintf(rp->state_dir, sizeof(rp->state_dir), "%s", v->sdir);
	rp->encrypted = v->m.encrypted;
	rp->generation = v->m.generation;
	snprintf(rp->reason, sizeof(rp->reason), "%s", reason ? reason : "");
}
