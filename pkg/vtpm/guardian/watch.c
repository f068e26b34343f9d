/* watch.c: inotify on every active state directory and the rotation that
 * turns each new swtpm generation into a durable current generation while
 * the previous one stays as the backup (hard links, no copies). */
/* Error and reason strings are cut at REASON_LEN on purpose; paths are
 * bounded by PATH_LEN and checked where it matters (path_join). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MASK                                                             \
	(IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF |        \
	 IN_ONLYDIR)

int
gd_watch_open(struct guardian *g)
{
	g->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (g->ifd < 0) {
		log_warn("inotify_init1");
		return -1;
	}
	return 0;
}

int
gd_watch_add(struct guardian *g, struct gd_vm *v)
{
	if (v->mode != VTPM_MODE_PERSISTENT) {
		return 0;
	}
	if (g->ifd >= 0 && v->wd < 0) {
		v->wd = inotify_add_watch(g->ifd, v->sdir, WATCH_MASK);
		if (v->wd < 0) {
			log_warn("vm %s: inotify_add_watch %s", v->uuid,
			         v->sdir);
			return -1;
		}
		log_debug("vm %s: watching %s", v->uuid, v->sdir);
	}
	/* anything written before the watch existed */
	gd_sync(g, v);
	return 0;
}

static void
commit_failed(struct guardian *g, struct gd_vm *v, const char *what, int err)
{
	char reason[REASON_LEN];

	snprintf(reason, sizeof(reason),
	         "new generation not committed (%s: %s); previous generation "
	         "%" PRIu64 " stays valid",
	         what, strerror(err), v->m.cur.id);
	if (!v->pending || strcmp(v->health.reason, reason) != 0) {
		log_warnx("vm %s: %s", v->uuid, reason);
	}
	v->pending = true;
	g->commit_failures++;
	gd_publish(g, v, STATE_ERROR, reason);
}

/* Swtpm's current file is still the current generation (same inode,
 * size and mtime): true, and a failed commit before it is cleared. */
static bool
sync_unchanged(struct guardian *g, struct gd_vm *v, const struct stat *st)
{
	if (!v->m.cur.present || (uint64_t) st->st_ino != v->m.cur.ino ||
	    (int64_t) st->st_size != v->m.cur.size ||
	    (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec !=
	        v->m.cur.mtime_ns) {
		return false;
	}
	if (v->pending) {
		v->pending = false;
		gd_publish(g, v, v->m.classification, v->m.reason);
	}
	log_debug("vm %s: sync: current is g%" PRIu64 ", nothing new", v->uuid,
	          v->m.cur.id);
	return true;
}

/* Link swtpm's current file cur as g<id> (dst), hash and fsync it. 1: a
 * new valid generation, durable, to adopt; 0: nothing to adopt (dst
 * removed); -1: the commit failed (dst removed, recorded). */
static int
sync_link(struct guardian *g, struct gd_vm *v, const char *cur, uint64_t id,
          char *dst, size_t dstlen, struct gd_info *fi)
{
	int saved;

	/* Take a name for whatever is swtpm's current file right now. Any
	 * inode that was ever visible as tpm2-00.permall is complete (swtpm
	 * writes TMP2-00.permall and renames it), and our link keeps it alive
	 * even if swtpm renames the next generation over it meanwhile. */
	gd_gen_path(v, id, dst, dstlen);
	unlink(dst);
	if (link(cur, dst) < 0) {
		if (errno == ENOENT) {
			return 0;
		}
		commit_failed(g, v, "link", errno);
		return -1;
	}
	if (gd_file_info(dst, true, fi) < 0) {
		saved = errno;
		unlink(dst);
		commit_failed(g, v, fi->why, saved ? saved : EIO);
		return -1;
	}
	if (v->m.cur.present && fi->ino == v->m.cur.ino) {
		unlink(dst);
		if (gd_info_matches(fi, &v->m.cur)) {
			v->m.cur.mtime_ns = fi->mtime_ns; /* touched only */
			return 0;
		}
		log_error(
		    "vm %s: current generation %" PRIu64 " was modified "
		    "in place (not by swtpm's write+rename): not adopted; "
		    "backup %" PRIu64 " kept",
		    v->uuid, v->m.cur.id, v->m.bak.id);
		v->m.cur.mtime_ns = fi->mtime_ns;
		gd_publish(
		    g, v, STATE_ERROR,
		    "current generation modified in place; verified on the "
		    "next prepare");
		return 0;
	}
	if (!fi->valid) {
		unlink(dst);
		log_warnx("vm %s: new state file not adopted: %s", v->uuid,
		          fi->why);
		return 0;
	}
	/* durable: the file (fsynced above), swtpm's rename, our link */
	if (fsync_dir(v->sdir) < 0 || fsync_dir(v->mdir) < 0) {
		saved = errno;
		unlink(dst);
		commit_failed(g, v, "fsync", saved);
		return -1;
	}
	return 1;
}

/* The manifest with g<id> (described by fi) as the current generation;
 * the old current one becomes the backup unless the content is the same. */
static void
sync_manifest(const struct gd_vm *v, uint64_t id, const struct gd_info *fi,
              struct gd_manifest *nm)
{
	bool same_content =
	    v->m.cur.present && memcmp(fi->sha, v->m.cur.sha, GD_SHA_LEN) == 0;

	*nm = v->m;
	if (!same_content && v->m.cur.present) {
		nm->bak = v->m.cur; /* previous good generation */
		nm->last_backup = (int64_t) time(NULL);
	}
	nm->cur.present = true;
	nm->cur.id = id;
	nm->cur.size = fi->size;
	memcpy(nm->cur.sha, fi->sha, GD_SHA_LEN);
	nm->cur.time = (int64_t) time(NULL);
	nm->cur.ino = fi->ino;
	nm->cur.mtime_ns = fi->mtime_ns;
	nm->next_id = id + 1;
	nm->encrypted = fi->encrypted;
	if (!same_content) {
		nm->generation++;
	}
	if (v->pending || nm->classification == STATE_ERROR) {
		nm->classification = STATE_NORMAL;
		snprintf(nm->reason, sizeof(nm->reason),
		         "generation committed after an earlier failure");
	}
}

/* Write nm durably (the commit point), then drop the generations it no
 * longer references. dst is the new generation's file (removed when the
 * manifest cannot be written). */
static int
sync_commit(struct guardian *g, struct gd_vm *v, const struct gd_manifest *nm,
            const char *dst)
{
	char     path[PATH_LEN];
	uint64_t drop[2];
	int      saved;

	snprintf(path, sizeof(path), "%s/%s", v->mdir, GD_MANIFEST);
	if (gd_manifest_save(path, nm) < 0) {
		saved = errno;
		unlink(dst);
		commit_failed(g, v, "manifest", saved);
		return -1;
	}
	drop[0] = v->m.cur.present ? v->m.cur.id : 0;
	drop[1] = v->m.bak.present ? v->m.bak.id : 0;
	v->m = *nm;
	for (int i = 0; i < 2; i++) {
		if (drop[i] != 0 && drop[i] != nm->cur.id &&
		    !(nm->bak.present && drop[i] == nm->bak.id)) {
			gd_gen_path(v, drop[i], path, sizeof(path));
			unlink(path);
		}
	}
	g->rotations++;
	log_debug("vm %s: generation %" PRId64 " (g%" PRIu64 ") committed, "
	          "backup g%" PRIu64,
	          v->uuid, nm->generation, nm->cur.id, nm->bak.id);
	if (v->pending) {
		v->pending = false;
		log_info("vm %s: generation committed after an earlier failure",
		         v->uuid);
	}
	gd_publish(g, v, nm->classification, nm->reason);
	return 0;
}

int
gd_sync(struct guardian *g, struct gd_vm *v)
{
	char               cur[PATH_LEN], dst[PATH_LEN];
	struct stat        st;
	struct gd_info     fi;
	struct gd_manifest nm;
	uint64_t           id;
	int                rc;

	v->dirty = false;
	v->last_sync_ms = now_ms();
	if (v->mode != VTPM_MODE_PERSISTENT || !v->have_manifest || v->purged) {
		return 0;
	}
	snprintf(cur, sizeof(cur), "%s/%s", v->sdir, GD_PERMALL);
	if (lstat(cur, &st) < 0) {
		v->pending = false;
		return 0; /* nothing written yet, or removed: prepare decides */
	}
	if (sync_unchanged(g, v, &st)) {
		return 0; /* already the current generation */
	}
	id = v->m.next_id;
	if ((rc = sync_link(g, v, cur, id, dst, sizeof(dst), &fi)) <= 0) {
		return rc;
	}
	sync_manifest(v, id, &fi, &nm);
	return sync_commit(g, v, &nm, dst);
}

static struct gd_vm *
vm_by_wd(struct guardian *g, int wd)
{
	for (struct gd_vm *v = g->vms; v != NULL; v = v->next) {
		if (v->wd == wd) {
			return v;
		}
	}
	return NULL;
}

void
gd_rescan(struct guardian *g, bool only_pending)
{
	for (struct gd_vm *v = g->vms; v != NULL; v = v->next) {
		if (v->wd >= 0 && (!only_pending || v->pending)) {
			gd_sync(g, v);
		}
	}
}

/* swtpm's other files: make them durable, no backup (volatile state is
 * read once on the next start; it is not a generation of permall). */
static void
fsync_other(struct gd_vm *v, const char *name)
{
	char p[PATH_LEN];

	snprintf(p, sizeof(p), "%s/%s", v->sdir, name);
	if (fsync_path(p) < 0 && errno != ENOENT) {
		log_warn("vm %s: fsync %s", v->uuid, p);
	}
	fsync_dir(v->sdir);
}

int
gd_watch_process(struct guardian *g)
{
	char buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	struct gd_vm               *touched[64];
	int                         nt = 0;
	bool                        overflow = false;
	ssize_t                     n;

	for (;;) {
		n = read(g->ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			struct gd_vm *v;
			ev = (const struct inotify_event *) p;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warnx("inotify queue overflow: rescanning "
				          "every state directory");
				overflow = true;
				continue;
			}
			v = vm_by_wd(g, ev->wd);
			if (v == NULL) {
				continue;
			}
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				log_warnx(
				    "vm %s: state directory %s removed or "
				    "moved while active",
				    v->uuid, v->sdir);
				continue;
			}
			if (ev->mask & IN_IGNORED) {
				v->wd = -1;
				continue;
			}
			if (ev->len == 0) {
				continue;
			}
			log_debug("vm %s: inotify %s 0x%x", v->uuid, ev->name,
			          ev->mask);
			if (strcmp(ev->name, GD_PERMALL) == 0) {
				int i;
				for (i = 0; i < nt && touched[i] != v; i++) {
				}
				if (i == nt && nt < 64) {
					touched[nt++] = v;
				} else if (i == nt) {
					overflow = true;
				}
			} else if (strcmp(ev->name, "tpm2-00.volatilestate") ==
			               0 ||
			           strcmp(ev->name, "tpm2-00.savestate") == 0) {
				fsync_other(v, ev->name);
			}
		}
	}
	if (overflow) {
		gd_rescan(g, false);
		return 0;
	}
	for (int i = 0; i < nt; i++) {
		touched[i]->dirty = true;
	}
	gd_flush_due(g);
	return 0;
}

int
gd_flush_due(struct guardian *g)
{
	uint64_t now = now_ms();
	int      next = -1;

	for (struct gd_vm *v = g->vms; v != NULL; v = v->next) {
		uint64_t due;
		if (!v->dirty) {
			continue;
		}
		due = v->last_sync_ms + g->commit_ms;
		if (now >= due) {
			gd_sync(g, v);
			continue;
		}
		if (next < 0 || due - now < (uint64_t) next) {
			next = (int) (due - now);
		}
	}
	return next;
}
