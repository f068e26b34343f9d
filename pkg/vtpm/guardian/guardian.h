/*
 * guardian.h: the state guardian, owner of <root>/persist/swtpm.
 *
 * Layout (see docs/guardian.md):
 *   <state>/tpm-state-<uuid>/         swtpm's directory (0700, swtpm uid)
 *   <state>/guardian/<uuid>/          ours (0700, root): manifest.json,
 *                                     g<id>.permall hard links, quarantine/
 *   <run>/ephemeral/tpm-state-<uuid>/ ephemeral state, never backed up
 *
 * Layering (each file calls only the ones below it):
 *   main.c      options, loop
 *   serve.c     request dispatch, the periodic tick
 *   ops.c       the request handlers restore, reset, release, purge, query
 *               and the startup load; reset of ephemeral state through
 *   classify.c  prepare (classify a VM's state, rebuild or reset it)
 *   watch.c     adopting swtpm's writes as generations (inotify, commits)
 *   statedir.c  state and manifest directories, generations
 *   quarantine.c  files taken out of use, kept under a cap
 *   manifest.c  publish.c  manifest file and state blob checks; the
 *                          VtpmStateHealth topic
 */
#ifndef VTPM_GUARDIAN_H
#define VTPM_GUARDIAN_H

#include "common.h"
#include "msg.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define GD_PERMALL          "tpm2-00.permall" /* swtpm's current generation */
#define GD_PERMALL_TMP      "TMP2-00.permall" /* swtpm writes this, renames */
#define GD_MANIFEST         "manifest.json"
#define GD_QUARANTINE       "quarantine"
#define GD_STATE_MAX        (16u << 20) /* largest state file we accept */
#define GD_SHA_LEN          32
#define GD_QUAR_MAX_ENTRIES 4          /* quarantine entries kept per VM */
#define GD_QUAR_MAX_BYTES   (4u << 20) /* and their total size */
#define GD_PURGED_KEEP_MS   60000      /* "purged" item stays this long */
#define GD_COMMIT_MS        20         /* default --commit-interval (ms) */

/* One state generation the guardian holds a hard link to. */
struct gd_gen {
	bool     present;
	uint64_t id; /* file <mdir>/g<id>.permall */
	int64_t  size;
	uint8_t  sha[GD_SHA_LEN];
	int64_t  time; /* unix time (s) it became durable */
	uint64_t ino;  /* its inode: equal to the swtpm file while current */
	int64_t  mtime_ns; /* mtime when hashed (detects in-place writes) */
};

/* The manifest: what the guardian knows about one VM's state. Written
 * atomically (durable_write); first line is the SHA-256 of the rest. */
struct gd_manifest {
	char          uuid[UUID_LEN];
	bool          encrypted; /* state written encrypted (as recorded) */
	bool          active; /* prepared and not released: swtpm may write */
	int64_t       generation;  /* state generations adopted so far */
	uint64_t      next_id;     /* next g<id> file number */
	int64_t       last_backup; /* unix time of the newest durable backup */
	int64_t       resets;      /* how often this state was reset */
	int           classification; /* enum state_class, last decided */
	char          reason[REASON_LEN];
	struct gd_gen cur; /* current generation (= swtpm's file) */
	struct gd_gen bak; /* previous good generation */
};

/* What reading one state file found. */
struct gd_info {
	bool     exists;
	bool     valid;     /* swtpm blob header and TLVs are consistent */
	bool     encrypted; /* header flag: written with --key */
	int64_t  size;
	uint8_t  sha[GD_SHA_LEN];
	uint64_t ino;
	int64_t  mtime_ns;
	char     why[128]; /* why not valid / not readable */
};

/* One VM the guardian knows. */
struct gd_vm {
	char               uuid[UUID_LEN];
	int                mode;           /* enum vtpm_mode */
	char               sdir[PATH_LEN]; /* swtpm's state directory */
	char               mdir[PATH_LEN]; /* our directory (persistent only) */
	struct gd_manifest m;
	bool               have_manifest;
	int                wd;      /* inotify watch, -1 when not watched */
	bool               pending; /* a commit failed: retry on the tick */
	bool               dirty;   /* swtpm wrote; commit when due */
	uint64_t           last_sync_ms; /* now_ms() of the last gd_sync */
	bool               purged;
	uint64_t           purged_at;    /* now_ms() of the purge */
	struct vtpm_state_health health; /* as last published */
	uint64_t                 pub_ms; /* now_ms() of the last publication */
	bool          pub_dirty; /* counters changed, not yet published */
	struct gd_vm *next;
};

struct topic_pub;
struct req_server;

struct guardian {
	struct paths      paths;
	char              gdir[PATH_LEN]; /* <state>/guardian */
	bool              do_chown; /* root: give state dirs to swtpm uid */
	uid_t             swtpm_uid;
	gid_t             swtpm_gid;
	pthread_mutex_t   lock; /* everything below; taken by requests & loop */
	struct gd_vm     *vms;
	int               ifd; /* inotify fd, -1 in tests without watching */
	struct topic_pub *pub; /* NULL: do not publish (unit tests) */
	unsigned commit_ms;    /* least time between two commits of a VM */
	unsigned quar_max_entries;
	size_t   quar_max_bytes;
	uint64_t rotations; /* generations adopted (stats) */
	uint64_t commit_failures;
};

/* manifest.c */
int gd_manifest_encode(const struct gd_manifest *m, char **out, size_t *len);
int gd_manifest_decode(const char *buf, size_t len, struct gd_manifest *m,
                       char *err, size_t errlen);
/* -1 with errno ENOENT when absent; other errors (bad checksum, JSON) set
 * errno EINVAL and fill err. */
int gd_manifest_load(const char *path, struct gd_manifest *m, char *err,
                     size_t errlen);
int gd_manifest_save(const char *path, const struct gd_manifest *m);
/* durable: durable_write; otherwise atomic without fsync (see gd_prepare) */
int  gd_manifest_write(const char *path, const struct gd_manifest *m,
                       bool durable);
void gd_manifest_init(struct gd_manifest *m, const char *uuid, bool encrypted);
/* Check a swtpm state blob: header v2, totlen = file size, TLVs cover it. */
bool gd_blob_check(const uint8_t *buf, size_t len, bool *encrypted, char *why,
                   size_t whylen);
/* Read path fully, hash, check; with do_fsync also fsync it. Returns 0 when
 * the file was read (fi->valid tells whether it looks like swtpm state),
 * 0 with fi->exists false when absent, -1 on an I/O error (fi->why). */
int  gd_file_info(const char *path, bool do_fsync, struct gd_info *fi);
bool gd_info_matches(const struct gd_info *fi, const struct gd_gen *g);

/* statedir.c */
#define GD_RESTORE_TMP                                                         \
	".guardian-restore" /* our temp file in the state dir                  \
	                     */
int           gd_init(struct guardian *g, const char *root, uid_t swtpm_uid,
                      gid_t swtpm_gid, bool do_chown);
void          gd_fini(struct guardian *g);
struct gd_vm *gd_vm_find(struct guardian *g, const char *uuid);
struct gd_vm *gd_vm_get(struct guardian *g, const char *uuid, int mode);
/* Stop watching v's state directory (inotify). */
void gd_watch_rm(struct guardian *g, struct gd_vm *v);
void gd_gen_path(const struct gd_vm *v, uint64_t id, char *dst, size_t len);
/* <sdir>/<name> */
void gd_sfile(const struct gd_vm *v, const char *name, char *dst, size_t len);
int  gd_save(struct guardian *g, struct gd_vm *v);       /* durable */
int  gd_save_quick(struct guardian *g, struct gd_vm *v); /* atomic only */
/* The state dir exists, is a directory, 0700, owned by the swtpm uid. */
int gd_ensure_sdir(struct guardian *g, struct gd_vm *v, char *err,
                   size_t errlen);
/* Log foreign files; -1 when the directory cannot be read. */
int gd_scan_foreign(struct gd_vm *v, char *err, size_t errlen);
/* ids of the g<id>.permall files, newest first */
int gd_list_gens(const struct gd_vm *v, uint64_t *ids, int max);
/* Remove what the manifest does not reference (interrupted rotations). */
void gd_gc_mdir(struct gd_vm *v);
/* Copy src in as swtpm's current file (new inode, durable); the old one
 * goes to quarantine under what. */
int gd_put_back(struct guardian *g, struct gd_vm *v, const char *src,
                const char *what, char *err, size_t errlen);
/* Link swtpm's current file as g<next_id>, hash and fsync it, fill gen. */
int gd_link_current(struct gd_vm *v, struct gd_gen *gen, struct gd_info *fi,
                    char *err, size_t errlen);
/* A verified copy of the current generation becomes the backup. */
int  gd_backup_copy(struct guardian *g, struct gd_vm *v, char *err,
                    size_t errlen);
void gd_unlink_gen(struct gd_vm *v, uint64_t id); /* unless referenced */
/* Fresh state: swtpm's files and our generations to quarantine. */
int  gd_do_reset(struct guardian *g, struct gd_vm *v, bool encrypted, int cls,
                 const char *why);
void gd_fill_rep(const struct gd_vm *v, struct guardian_rep *rp, bool ok,
                 int cls, const char *reason);

/* quarantine.c */
/* Move files to <mdir>/quarantine/<stamp>-<what>/, keep the cap. */
int gd_quarantine(struct guardian *g, struct gd_vm *v, const char *what,
                  const char *const *paths, int n);

/* classify.c */
/* Ephemeral state: empty the directory, fresh every time. */
int gd_prepare_ephemeral(struct guardian *g, struct gd_vm *v,
                         const struct guardian_req *rq,
                         struct guardian_rep       *rp);
int gd_prepare(struct guardian *g, const struct guardian_req *rq,
               struct guardian_rep *rp);

/* ops.c */
int gd_restore(struct guardian *g, const struct guardian_req *rq,
               struct guardian_rep *rp);
int gd_reset(struct guardian *g, const struct guardian_req *rq,
             struct guardian_rep *rp);
int gd_release(struct guardian *g, const struct guardian_req *rq,
               struct guardian_rep *rp);
int gd_purge(struct guardian *g, const struct guardian_req *rq,
             struct guardian_rep *rp);
int gd_query(struct guardian *g, const struct guardian_req *rq,
             struct guardian_rep *rp);
/* Load every manifest at startup; re-watch and catch up active ones. */
int gd_load_all(struct guardian *g);

/* watch.c */
int gd_watch_open(struct guardian *g);
int gd_watch_add(struct guardian *g, struct gd_vm *v);
/* Adopt swtpm's current file as a new generation when it is one: link,
 * hash, fsync, manifest, drop the old backup. 0 (adopted or nothing new),
 * -1 when the commit failed (v->pending set, previous generation kept). */
int gd_sync(struct guardian *g, struct gd_vm *v);
/* Read and act on inotify events (call when g->ifd is readable). */
int gd_watch_process(struct guardian *g);
/* Commit the VMs whose new generation is due (commit_ms after their
 * last commit); returns ms until the next one is due, or -1. */
int gd_flush_due(struct guardian *g);
/* Sync every watched VM (after IN_Q_OVERFLOW, and on the retry tick). */
void gd_rescan(struct guardian *g, bool only_pending);

/* publish.c */
int  gd_publish_open(struct guardian *g);
void gd_publish_close(struct guardian *g);
/* Record v's health (cls, reason, generation) and publish it; changes of
 * the counters alone are published at most every 500 ms. */
void gd_publish(struct guardian *g, struct gd_vm *v, int cls,
                const char *reason);
/* Publish what gd_publish held back once it is due. */
void gd_publish_due(struct guardian *g, struct gd_vm *v);
void gd_publish_delete(struct guardian *g, struct gd_vm *v);

/* serve.c */
int gd_request(struct guardian *g, const struct guardian_req *rq,
               struct guardian_rep *rp);
int gd_serve_open(struct guardian *g, struct req_server **srv);
/* Periodic work: retry failed commits, drop old "purged" items. */
void gd_tick(struct guardian *g);

#endif
