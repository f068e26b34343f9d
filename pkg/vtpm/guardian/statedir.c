/* statedir.c: per-VM state directories: prepare (create, verify,
 * classify), restore, reset, release, purge, query, quarantine, and the
 * startup load of every manifest. Callers hold g->lock. */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"
#include "pubsub.h"

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

#define RESTORE_TMP ".guardian-restore"

/* Files swtpm 0.7.1 itself creates in its state directory. Anything else
 * is foreign: logged, left alone, removed only by purge. */
static const char *const swtpm_files[] = {GD_PERMALL,
                                          GD_PERMALL_TMP,
                                          "tpm2-00.volatilestate",
                                          "TMP2-00.volatilestate",
                                          "tpm2-00.savestate",
                                          "TMP2-00.savestate",
                                          ".lock",
                                          RESTORE_TMP,
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
	        0 ||
	    path_join(g->edir, sizeof(g->edir), "%s/ephemeral", g->paths.run) <
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
		return path_join(v->sdir, sizeof(v->sdir), "%s/tpm-state-%s",
		                 g->edir, v->uuid);
	}
	if (path_join(v->sdir, sizeof(v->sdir), "%s/tpm-state-%s",
	              g->paths.state, v->uuid) < 0 ||
	    path_join(v->mdir, sizeof(v->mdir), "%s/%s", g->gdir, v->uuid) <
	        0) {
		return -1;
	}
	return 0;
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

static void
sfile(const struct gd_vm *v, const char *name, char *dst, size_t len)
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

/* ---- quarantine ---- */

struct qent {
	char   name[256];
	size_t bytes;
};

static size_t
tree_bytes(const char *dir)
{
	DIR           *d = opendir(dir);
	struct dirent *e;
	struct stat    st;
	char           p[PATH_LEN];
	size_t         sum = 0;

	if (d == NULL) {
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' &&
		    (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0)) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			sum += (size_t) st.st_size;
		}
	}
	closedir(d);
	return sum;
}

static int
qent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct qent *) a)->name,
	              ((const struct qent *) b)->name);
}

/* Keep at most quar_max_entries entries and quar_max_bytes in total;
 * the oldest go first, the newest (keep) always stays. */
static void
quarantine_cap(struct guardian *g, struct gd_vm *v, const char *qdir,
               const char *keep)
{
	DIR           *d = opendir(qdir);
	struct dirent *e;
	struct qent    ents[64];
	size_t         n = 0, total = 0;
	char           p[PATH_LEN];

	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL && n < 64) {
		if (e->d_name[0] == '.') {
			continue;
		}
		snprintf(ents[n].name, sizeof(ents[n].name), "%s", e->d_name);
		snprintf(p, sizeof(p), "%s/%s", qdir, e->d_name);
		ents[n].bytes = tree_bytes(p);
		total += ents[n].bytes;
		n++;
	}
	closedir(d);
	qsort(ents, n, sizeof(ents[0]), qent_cmp);
	for (size_t i = 0; i < n; i++) {
		if (n - i <= g->quar_max_entries &&
		    total <= g->quar_max_bytes) {
			break;
		}
		if (strcmp(ents[i].name, keep) == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", qdir, ents[i].name);
		log_info("vm %s: quarantine over its cap: removing %s", v->uuid,
		         p);
		remove_tree(p);
		total -= ents[i].bytes;
	}
}

int
gd_quarantine(struct guardian *g, struct gd_vm *v, const char *what,
              const char *const *paths, int n)
{
	char            qdir[PATH_LEN], entry[PATH_LEN], dst[PATH_LEN];
	char            name[128];
	struct timespec ts;
	int             moved = 0;

	if (snprintf(qdir, sizeof(qdir), "%s/%s", v->mdir, GD_QUARANTINE) >=
	    (int) sizeof(qdir)) {
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof(name), "%011lld.%09ld-%s", (long long) ts.tv_sec,
	         ts.tv_nsec, what);
	if (path_join(entry, sizeof(entry), "%s/%s", qdir, name) < 0) {
		return -1;
	}
	if (mkdir_p(entry, 0700) < 0) {
		log_warn("vm %s: mkdir %s", v->uuid, entry);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const char *base = strrchr(paths[i], '/');
		base = base ? base + 1 : paths[i];
		if (path_join(dst, sizeof(dst), "%s/%s", entry, base) < 0) {
			continue;
		}
		if (rename(paths[i], dst) < 0) {
			if (errno != ENOENT) {
				log_warn("vm %s: quarantine %s", v->uuid,
				         paths[i]);
			}
			continue;
		}
		moved++;
	}
	fsync_dir(entry);
	fsync_dir(qdir);
	if (moved == 0) {
		rmdir(entry);
	} else {
		log_info("vm %s: %d file(s) kept in %s", v->uuid, moved, entry);
	}
	quarantine_cap(g, v, qdir, name);
	return moved;
}

/* ---- helpers on the two directories ---- */

static int
ensure_sdir(struct guardian *g, struct gd_vm *v, char *err, size_t errlen)
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
static int
scan_foreign(struct gd_vm *v, char *err, size_t errlen)
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
static int
list_gens(const struct gd_vm *v, uint64_t *ids, int max)
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
static void
gc_mdir(struct gd_vm *v)
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
	snprintf(p, sizeof(p), "%s/%s", v->sdir, RESTORE_TMP);
	unlink(p);
}

/* Copy src into the state directory as the current file (a new inode,
 * owned by the swtpm uid), durable. The old current file, if any, goes to
 * quarantine under what. */
static int
put_back_copy(struct guardian *g, struct gd_vm *v, const char *src,
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
	sfile(v, RESTORE_TMP, tmp, sizeof(tmp));
	sfile(v, GD_PERMALL, cur, sizeof(cur));
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
static int
link_current(struct gd_vm *v, struct gd_gen *gen, struct gd_info *fi, char *err,
             size_t errlen)
{
	char cur[PATH_LEN], dst[PATH_LEN];

	sfile(v, GD_PERMALL, cur, sizeof(cur));
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
static int
backup_from_current(struct guardian *g, struct gd_vm *v, char *err,
                    size_t errlen)
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

static void
unlink_gen(struct gd_vm *v, uint64_t id)
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
static int
do_reset(struct guardian *g, struct gd_vm *v, bool encrypted, int cls,
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
		sfile(v, swtpm_files[i], paths[n], PATH_LEN);
		pp[n] = paths[n];
		n++;
	}
	ng = list_gens(v, ids, 64);
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

/* ---- classification ---- */

static void
fill_rep(const struct gd_vm *v, struct guardian_rep *rp, bool ok, int cls,
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

/* Current is fine: make sure a good backup exists too. */
static void
check_backup(struct guardian *g, struct gd_vm *v, char *reason, size_t rlen)
{
	char           p[PATH_LEN], err[256];
	struct gd_info fi;
	const char    *what = NULL;
	size_t         l;

	if (!v->m.cur.present) {
		return;
	}
	if (v->m.bak.present) {
		gd_gen_path(v, v->m.bak.id, p, sizeof(p));
		if (gd_file_info(p, false, &fi) < 0) {
			what = fi.why;
		} else if (!fi.exists) {
			what = "absent";
		} else if (!gd_info_matches(&fi, &v->m.bak)) {
			what = fi.valid ? "sha256 mismatch" : fi.why;
		} else {
			return;
		}
		snprintf(err, sizeof(err), "%s", what);
		if (fi.exists) {
			const char *q[] = {p};
			gd_quarantine(g, v, "backup", q, 1);
		}
		log_warnx("vm %s: backup generation %" PRIu64 " is bad (%s)",
		          v->uuid, v->m.bak.id, err);
	} else {
		snprintf(err, sizeof(err), "none yet");
	}
	v->m.bak.present = false;
	l = strlen(reason);
	{
		char e2[256];
		if (backup_from_current(g, v, e2, sizeof(e2)) < 0) {
			log_warnx("vm %s: no backup: %s", v->uuid, e2);
			snprintf(reason + l, rlen - l,
			         "%sbackup %s; copy failed: %s", l ? "; " : "",
			         err, e2);
			return;
		}
	}
	if (strcmp(err, "none yet") != 0) {
		snprintf(
		    reason + l, rlen - l,
		    "%sbackup was bad (%s): replaced by a copy of the current "
		    "generation",
		    l ? "; " : "", err);
	}
}

/* Manifest lost or unusable: rebuild it from the files (structure only;
 * there is no recorded hash to compare with). */
static int
rebuild(struct guardian *g, struct gd_vm *v, const char *why, bool encrypted,
        int *cls, char *reason, size_t rlen)
{
	char           cur[PATH_LEN], mpath[PATH_LEN], p[PATH_LEN];
	char           err[256];
	struct gd_info fi, gi;
	uint64_t       ids[64];
	int            ng;
	bool           any = false;

	snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
	if (access(mpath, F_OK) == 0) {
		const char *q[] = {mpath};
		gd_quarantine(g, v, "manifest", q, 1);
	}
	sfile(v, GD_PERMALL, cur, sizeof(cur));
	if (gd_file_info(cur, false, &fi) < 0) {
		snprintf(reason, rlen, "%s: %s", cur, fi.why);
		*cls = STATE_ERROR;
		return -1;
	}
	ng = list_gens(v, ids, 64);
	gd_manifest_init(&v->m, v->uuid, fi.valid ? fi.encrypted : encrypted);
	v->m.active = true;
	for (int i = 0; i < ng; i++) {
		if (ids[i] + 1 > v->m.next_id) {
			v->m.next_id = ids[i] + 1;
		}
	}
	v->m.generation = (int64_t) v->m.next_id - 1;
	if (!fi.valid) {
		/* the swtpm file is bad too: newest valid generation back */
		for (int i = 0; i < ng; i++) {
			gd_gen_path(v, ids[i], p, sizeof(p));
			if (gd_file_info(p, false, &gi) == 0 && gi.valid) {
				if (put_back_copy(g, v, p, "current", err,
				                  sizeof(err)) < 0) {
					snprintf(reason, rlen, "%s", err);
					*cls = STATE_ERROR;
					return -1;
				}
				gd_file_info(cur, false, &fi);
				snprintf(reason, rlen,
				         "manifest %s and current generation "
				         "%s: put "
				         "back generation %" PRIu64,
				         why, fi.exists ? "bad" : "absent",
				         ids[i]);
				*cls = STATE_RESTORED;
				break;
			}
			any = true;
		}
		if (!fi.valid) {
			if (!fi.exists && ng == 0) {
				snprintf(reason, rlen,
				         "new state (manifest %s)", why);
				*cls = STATE_NEW;
				v->m.classification = STATE_NEW;
				return 0;
			}
			(void) any;
			snprintf(reason, rlen,
			         "manifest %s and no valid state file left",
			         why);
			*cls = STATE_RESET;
			return do_reset(g, v, encrypted, STATE_RESET, reason);
		}
	} else {
		snprintf(reason, rlen,
		         "manifest %s: rebuilt from the state files (structure "
		         "checked, no recorded hash to compare)",
		         why);
		*cls = STATE_NORMAL;
	}
	v->m.encrypted = fi.encrypted;
	if (link_current(v, &v->m.cur, &fi, err, sizeof(err)) < 0) {
		snprintf(reason, rlen, "%s", err);
		*cls = STATE_ERROR;
		return -1;
	}
	/* newest older valid generation with other content: the backup */
	for (int i = 0; i < ng; i++) {
		gd_gen_path(v, ids[i], p, sizeof(p));
		if (gd_file_info(p, false, &gi) == 0 && gi.valid &&
		    memcmp(gi.sha, v->m.cur.sha, GD_SHA_LEN) != 0) {
			v->m.bak.present = true;
			v->m.bak.id = ids[i];
			v->m.bak.size = gi.size;
			memcpy(v->m.bak.sha, gi.sha, GD_SHA_LEN);
			v->m.bak.ino = gi.ino;
			v->m.bak.mtime_ns = gi.mtime_ns;
			v->m.bak.time = (int64_t) time(NULL);
			v->m.last_backup = v->m.bak.time;
			break;
		}
	}
	return 0;
}

/* Verify the current generation against the manifest; restore, reset or
 * report missing. */
static int
classify(struct guardian *g, struct gd_vm *v, bool encrypted, int *cls,
         char *reason, size_t rlen)
{
	char           cur[PATH_LEN], p[PATH_LEN], err[256], badcur[160];
	struct gd_info fi, ci;
	struct gd_gen *cand[2] = {&v->m.cur, &v->m.bak};
	const char    *cname[2] = {"current", "backup"};
	bool           any_files;

	sfile(v, GD_PERMALL, cur, sizeof(cur));
	if (gd_file_info(cur, false, &fi) < 0) {
		snprintf(reason, rlen, "%s: %s", cur, fi.why);
		*cls = STATE_ERROR;
		return -1;
	}
	if (!v->m.cur.present) {
		if (!fi.exists) {
			*cls = STATE_NEW;
			snprintf(reason, rlen, "no state written yet");
			return 0;
		}
		if (fi.valid) {
			if (link_current(v, &v->m.cur, &fi, err, sizeof(err)) <
			    0) {
				snprintf(reason, rlen, "%s", err);
				*cls = STATE_ERROR;
				return -1;
			}
			v->m.encrypted = fi.encrypted;
			v->m.generation++;
			*cls = STATE_NORMAL;
			snprintf(reason, rlen, "unrecorded state file adopted");
			return 0;
		}
		snprintf(reason, rlen, "unrecorded state file is bad (%s)",
		         fi.why);
		*cls = STATE_RESET;
		return do_reset(g, v, encrypted, STATE_RESET, reason);
	}
	if (gd_info_matches(&fi, &v->m.cur)) {
		*cls = STATE_NORMAL;
		v->m.encrypted = fi.valid ? fi.encrypted : v->m.encrypted;
		return 0;
	}
	snprintf(badcur, sizeof(badcur), "%s",
	         !fi.exists ? "absent"
	                    : (fi.valid ? "sha256 mismatch" : fi.why));
	any_files = fi.exists;
	for (int i = 0; i < 2; i++) {
		if (!cand[i]->present) {
			continue;
		}
		gd_gen_path(v, cand[i]->id, p, sizeof(p));
		if (gd_file_info(p, false, &ci) < 0 || !ci.exists) {
			continue;
		}
		any_files = true;
		if (!gd_info_matches(&ci, cand[i])) {
			log_warnx("vm %s: %s generation %" PRIu64 " is bad too "
			          "(%s)",
			          v->uuid, cname[i], cand[i]->id,
			          ci.valid ? "sha256 mismatch" : ci.why);
			continue;
		}
		if (put_back_copy(g, v, p, "current", err, sizeof(err)) < 0) {
			snprintf(reason, rlen, "restore: %s", err);
			*cls = STATE_ERROR;
			return -1;
		}
		{
			struct gd_gen  good = *cand[i], nc;
			struct gd_info nf;
			uint64_t       oldcur = v->m.cur.id;
			if (link_current(v, &nc, &nf, err, sizeof(err)) < 0 ||
			    !gd_info_matches(&nf, &good)) {
				snprintf(reason, rlen, "restore: %s", err);
				*cls = STATE_ERROR;
				return -1;
			}
			if (i == 1) {
				v->m.bak = good; /* backup stays the backup */
			}
			v->m.cur = nc;
			unlink_gen(v, oldcur);
		}
		v->m.encrypted = ci.encrypted;
		*cls = STATE_RESTORED;
		snprintf(reason, rlen,
		         "current generation %s: put back the %s generation "
		         "(sha256 verified)",
		         badcur, i == 0 ? "last good" : "backup");
		log_warnx("vm %s: %s", v->uuid, reason);
		return 0;
	}
	if (!any_files) {
		*cls = STATE_MISSING;
		snprintf(reason, rlen,
		         "the manifest records generation %" PRId64
		         " but the state files are gone",
		         v->m.generation);
		return do_reset(g, v, encrypted, STATE_MISSING, reason);
	}
	*cls = STATE_RESET;
	snprintf(reason, rlen, "current generation %s and no good backup left",
	         badcur);
	return do_reset(g, v, encrypted, STATE_RESET, reason);
}

static int
prepare_ephemeral(struct guardian *g, struct gd_vm *v,
                  const struct guardian_req *rq, struct guardian_rep *rp)
{
	char err[REASON_LEN];

	if (mkdir_p(g->edir, 0711) < 0 || chmod(g->edir, 0711) < 0) {
		snprintf(err, sizeof(err), "mkdir %s: %s", g->edir,
		         strerror(errno));
		goto fail;
	}
	if (g->do_chown) {
		/* the swtpm uid must traverse <root>/run and <run> (mkdir_p
		 * made them 0700): add search permission, nothing else */
		char        up[PATH_LEN], *slash;
		struct stat st;
		snprintf(up, sizeof(up), "%s", g->paths.run);
		for (int i = 0; i < 2; i++) {
			if (stat(up, &st) == 0 && !(st.st_mode & S_IXOTH)) {
				chmod(up, (st.st_mode & 07777) | 0111);
			}
			if ((slash = strrchr(up, '/')) == NULL || slash == up) {
				break;
			}
			*slash = '\0';
		}
	}
	if (remove_tree(v->sdir) < 0) {
		snprintf(err, sizeof(err), "empty %s: %s", v->sdir,
		         strerror(errno));
		goto fail;
	}
	if (ensure_sdir(g, v, err, sizeof(err)) < 0) {
		goto fail;
	}
	gd_manifest_init(&v->m, v->uuid, rq->encrypted);
	fill_rep(v, rp, true, STATE_NEW, "ephemeral: fresh state");
	gd_publish(g, v, STATE_NEW, "ephemeral: fresh state every boot");
	return 0;
fail:
	log_warnx("vm %s: prepare ephemeral: %s", v->uuid, err);
	fill_rep(v, rp, false, STATE_ERROR, err);
	gd_publish(g, v, STATE_ERROR, err);
	return 0;
}

int
gd_prepare(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_get(g, rq->uuid, rq->mode);
	char          err[REASON_LEN] = "", mpath[PATH_LEN];
	char          reason[REASON_LEN] = "";
	int           cls = STATE_UNKNOWN, rc;

	if (v == NULL) {
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		snprintf(rp->reason, sizeof(rp->reason), "out of memory");
		return 0;
	}
	v->purged = false;
	if (rq->mode == VTPM_MODE_EPHEMERAL) {
		return prepare_ephemeral(g, v, rq, rp);
	}
	if (ensure_sdir(g, v, err, sizeof(err)) < 0 ||
	    scan_foreign(v, err, sizeof(err)) < 0) {
		goto fail;
	}
	if (mkdir_p(v->mdir, 0700) < 0) {
		snprintf(err, sizeof(err), "mkdir %s: %s", v->mdir,
		         strerror(errno));
		goto fail;
	}
	snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
	rc = gd_manifest_load(mpath, &v->m, err, sizeof(err));
	if (rc == 0 && strcasecmp(v->m.uuid, v->uuid) != 0) {
		snprintf(err, sizeof(err), "belongs to VM %s", v->m.uuid);
		rc = -1;
		errno = EINVAL;
	}
	if (rc < 0) {
		char why[REASON_LEN];
		bool absent = errno == ENOENT;
		snprintf(why, sizeof(why), "%s", absent ? "absent" : err);
		if (!absent) {
			log_warnx("vm %s: manifest %s: %s", v->uuid, mpath,
			          err);
		}
		if (rebuild(g, v, why, rq->encrypted, &cls, reason,
		            sizeof(reason)) < 0) {
			snprintf(err, sizeof(err), "%s", reason);
			goto fail;
		}
		if (cls == STATE_NEW) {
			gd_manifest_init(&v->m, v->uuid, rq->encrypted);
			v->m.active = true;
			reason[0] = '\0';
		}
	} else {
		v->have_manifest = true;
		gc_mdir(v);
		if (v->m.active) {
			/* swtpm may have written while nobody watched */
			gd_sync(g, v);
		}
		if (classify(g, v, rq->encrypted, &cls, reason,
		             sizeof(reason)) < 0) {
			snprintf(err, sizeof(err), "%s", reason);
			goto fail;
		}
	}
	if (cls == STATE_NORMAL || cls == STATE_RESTORED) {
		check_backup(g, v, reason, sizeof(reason));
	}
	if (cls == STATE_NEW) {
		v->m.encrypted = rq->encrypted;
	}
	v->m.active = true;
	v->m.classification = cls;
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", reason);
	/* The boot path (new, normal) writes the manifest atomically but
	 * without fsync: it only marks the VM active. Lost in a power cut, the
	 * old manifest still names durable, verified generations; the first
	 * commit of this boot makes "active" durable. A restore or reset is
	 * written durably. */
	if ((cls == STATE_NEW || cls == STATE_NORMAL ? gd_save_quick(g, v)
	                                             : gd_save(g, v)) < 0) {
		snprintf(err, sizeof(err), "write manifest in %s: %s", v->mdir,
		         strerror(errno));
		goto fail;
	}
	gc_mdir(v);
	if (gd_watch_add(g, v) < 0) {
		snprintf(err, sizeof(err), "cannot watch %s", v->sdir);
		goto fail;
	}
	fill_rep(v, rp, true, cls, reason);
	gd_publish(g, v, cls, reason);
	return 0;
fail:
	log_warnx("vm %s: prepare: %s", v->uuid, err);
	fill_rep(v, rp, false, STATE_ERROR, err);
	gd_publish(g, v, STATE_ERROR, err);
	return 0;
}

/* Find a VM the request may act on: known and persistent with a manifest,
 * loading it from disk when needed. */
static struct gd_vm *
known_vm(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp, const char *op)
{
	struct gd_vm *v = gd_vm_find(g, rq->uuid);

	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	rp->classification = STATE_UNKNOWN;
	if (v == NULL || v->purged ||
	    (v->mode == VTPM_MODE_PERSISTENT && !v->have_manifest)) {
		snprintf(rp->reason, sizeof(rp->reason),
		         "%s: unknown VM %s: no state (prepare it first)", op,
		         rq->uuid);
		log_warnx("vm %s: %s", rq->uuid, rp->reason);
		return NULL;
	}
	return v;
}

int
gd_restore(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm  *v = known_vm(g, rq, rp, "restore");
	char           p[PATH_LEN], err[256], reason[REASON_LEN];
	struct gd_info bi, nf;
	struct gd_gen  nc;
	uint64_t       oldcur;

	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		fill_rep(v, rp, false, STATE_NEW,
		         "restore: ephemeral state has no backup");
		return 0;
	}
	gd_sync(g, v);
	if (!v->m.bak.present ||
	    memcmp(v->m.bak.sha, v->m.cur.sha, GD_SHA_LEN) == 0) {
		snprintf(err, sizeof(err),
		         "restore: no backup that differs from the rejected "
		         "generation");
		log_warnx("vm %s: %s", v->uuid, err);
		fill_rep(v, rp, false, v->m.classification, err);
		return 0;
	}
	gd_gen_path(v, v->m.bak.id, p, sizeof(p));
	if (gd_file_info(p, false, &bi) < 0 ||
	    !gd_info_matches(&bi, &v->m.bak)) {
		snprintf(err, sizeof(err), "restore: backup %s is bad (%s)", p,
		         bi.exists ? bi.why : "absent");
		log_warnx("vm %s: %s", v->uuid, err);
		fill_rep(v, rp, false, v->m.classification, err);
		return 0;
	}
	if (put_back_copy(g, v, p, "rejected", err, sizeof(err)) < 0 ||
	    link_current(v, &nc, &nf, err, sizeof(err)) < 0) {
		fill_rep(v, rp, false, STATE_ERROR, err);
		gd_publish(g, v, STATE_ERROR, err);
		return 0;
	}
	oldcur = v->m.cur.id;
	v->m.cur = nc;
	unlink_gen(v, oldcur);
	v->m.encrypted = nf.encrypted;
	v->m.generation++;
	snprintf(reason, sizeof(reason),
	         "swtpm rejected generation %" PRIu64
	         ": put back backup generation "
	         "%" PRIu64,
	         oldcur, v->m.bak.id);
	log_warnx("vm %s: %s", v->uuid, reason);
	v->m.classification = STATE_RESTORED;
	snprintf(v->m.reason, sizeof(v->m.reason), "%s", reason);
	if (gd_save(g, v) < 0) {
		v->pending = true;
	}
	fill_rep(v, rp, true, STATE_RESTORED, reason);
	gd_publish(g, v, STATE_RESTORED, reason);
	return 0;
}

int
gd_reset(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = known_vm(g, rq, rp, "reset");
	char          reason[REASON_LEN];

	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		return prepare_ephemeral(g, v, rq, rp);
	}
	snprintf(reason, sizeof(reason),
	         "requested after swtpm rejected generation %" PRIu64
	         " and its backup",
	         v->m.cur.id);
	do_reset(g, v, rq->encrypted, STATE_RESET, reason);
	v->m.active = true;
	if (gd_save(g, v) < 0) {
		fill_rep(v, rp, false, STATE_ERROR,
		         "reset: manifest write failed");
		gd_publish(g, v, STATE_ERROR, "reset: manifest write failed");
		return 0;
	}
	fill_rep(v, rp, true, STATE_RESET, reason);
	gd_publish(g, v, STATE_RESET, reason);
	return 0;
}

int
gd_release(struct guardian *g, const struct guardian_req *rq,
           struct guardian_rep *rp)
{
	struct gd_vm *v;
	char          reason[REASON_LEN];

	if (rq->mode == VTPM_MODE_EPHEMERAL &&
	    gd_vm_find(g, rq->uuid) == NULL) {
		/* ephemeral state has nothing to commit, even if we restarted
		 */
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		rp->ok = true;
		rp->classification = STATE_UNKNOWN;
		return 0;
	}
	v = known_vm(g, rq, rp, "release");
	if (v == NULL) {
		return 0;
	}
	if (v->mode == VTPM_MODE_EPHEMERAL) {
		fill_rep(v, rp, true, v->health.classification, "");
		return 0;
	}
	if (gd_sync(g, v) < 0) {
		/* keep active: the next prepare catches up first */
		snprintf(
		    reason, sizeof(reason),
		    "release: last generation not committed (%s); previous "
		    "generation %" PRIu64 " stays valid",
		    v->health.reason, v->m.cur.id);
		fill_rep(v, rp, false, STATE_ERROR, reason);
		return 0;
	}
	fsync_dir(v->sdir);
	gd_watch_rm(g, v);
	v->m.active = false;
	if (gd_save(g, v) < 0) {
		v->m.active = true;
		snprintf(reason, sizeof(reason),
		         "release: manifest write failed: %s", strerror(errno));
		fill_rep(v, rp, false, STATE_ERROR, reason);
		gd_publish(g, v, STATE_ERROR, reason);
		return 0;
	}
	snprintf(reason, sizeof(reason),
	         "released: generation %" PRId64 " committed", v->m.generation);
	log_info("vm %s: %s", v->uuid, reason);
	fill_rep(v, rp, true, v->m.classification, reason);
	gd_publish(g, v, v->m.classification, v->m.reason);
	return 0;
}

int
gd_purge(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_get(
	    g, rq->uuid,
	    gd_vm_find(g, rq->uuid) ? gd_vm_find(g, rq->uuid)->mode : rq->mode);
	char        p[PATH_LEN];
	const char *fail = NULL;
	char        err[REASON_LEN];

	if (v == NULL) {
		snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
		snprintf(rp->reason, sizeof(rp->reason), "out of memory");
		return 0;
	}
	gd_watch_rm(g, v);
	/* both modes' directories and ours: everything of this VM */
	snprintf(p, sizeof(p), "%s/tpm-state-%s", g->paths.state, v->uuid);
	if (remove_tree(p) < 0) {
		fail = p;
	}
	snprintf(p, sizeof(p), "%s/tpm-state-%s", g->edir, v->uuid);
	if (remove_tree(p) < 0 && fail == NULL) {
		fail = p;
	}
	snprintf(p, sizeof(p), "%s/%s", g->gdir, v->uuid);
	if (remove_tree(p) < 0 && fail == NULL) {
		fail = p;
	}
	fsync_dir(g->paths.state);
	fsync_dir(g->gdir);
	if (fail != NULL) {
		snprintf(err, sizeof(err), "purge: remove %s: %s", fail,
		         strerror(errno));
		log_warnx("vm %s: %s", v->uuid, err);
		fill_rep(v, rp, false, STATE_ERROR, err);
		gd_publish(g, v, STATE_ERROR, err);
		return 0;
	}
	v->have_manifest = false;
	v->pending = false;
	v->purged = true;
	v->purged_at = now_ms();
	log_info("vm %s: purged (state, backups, quarantine)", v->uuid);
	fill_rep(v, rp, true, STATE_PURGED,
	         "state, backups and quarantine "
	         "removed");
	rp->generation = 0;
	gd_publish(g, v, STATE_PURGED, "removed on delete");
	return 0;
}

int
gd_query(struct guardian *g, const struct guardian_req *rq,
         struct guardian_rep *rp)
{
	struct gd_vm *v = gd_vm_find(g, rq->uuid);

	snprintf(rp->uuid, sizeof(rp->uuid), "%s", rq->uuid);
	if (v == NULL) {
		rp->classification = STATE_UNKNOWN;
		snprintf(rp->reason, sizeof(rp->reason),
		         "query: unknown VM %s: no state", rq->uuid);
		return 0;
	}
	fill_rep(v, rp, true, v->health.classification, v->health.reason);
	return 0;
}

int
gd_load_all(struct guardian *g)
{
	DIR           *d = opendir(g->gdir);
	struct dirent *e;
	char           mpath[PATH_LEN], err[256];

	if (d == NULL) {
		log_warn("opendir %s", g->gdir);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct gd_vm *v;
		if (!uuid_valid(e->d_name)) {
			continue;
		}
		v = gd_vm_get(g, e->d_name, VTPM_MODE_PERSISTENT);
		if (v == NULL) {
			continue;
		}
		snprintf(mpath, sizeof(mpath), "%s/%s", v->mdir, GD_MANIFEST);
		if (gd_manifest_load(mpath, &v->m, err, sizeof(err)) < 0 ||
		    strcasecmp(v->m.uuid, v->uuid) != 0) {
			log_warnx("vm %s: manifest %s: %s: checked on the next "
			          "prepare",
			          v->uuid, mpath,
			          errno == EINVAL ? err : "absent");
			continue;
		}
		v->have_manifest = true;
		gc_mdir(v);
		if (v->m.active) {
			log_info(
			    "vm %s: active at the last stop: watching again",
			    v->uuid);
			if (gd_watch_add(g, v) < 0) {
				continue;
			}
		}
		gd_publish(g, v, v->m.classification, v->m.reason);
	}
	closedir(d);
	return 0;
}
