/* quarantine.c: files the guardian takes out of use (a bad generation,
 * state replaced by a reset) are moved, not deleted, to
 * <mdir>/quarantine/<stamp>-<what>/, under a cap on entries and bytes.
 * Callers hold g->lock. */
/* Paths are bounded by PATH_LEN and checked where it matters. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "guardian.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
