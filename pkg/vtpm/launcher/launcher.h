/*
 * launcher.h: vtpm-launcher, one swtpm per VM.
 *
 * The main thread owns every struct vm: it follows DomainStatus, decides
 * (vm.c), hands blocking work (key release, guardian requests, spawning
 * swtpm, CMD_INIT, stopping) to a pool of worker threads as struct job
 * (pool.c), applies their results and publishes VtpmStatus (loop.c).
 * Workers see only their job and the read-only config.
 */
#ifndef VTPM_LAUNCHER_H
#define VTPM_LAUNCHER_H

#include "common.h"
#include "msg.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct req_client;
struct sandbox;

struct launcher_cfg {
	struct paths       paths;
	char               swtpm[PATH_LEN]; /* swtpm binary (--swtpm) */
	char               swtpm_user[64];  /* --swtpm-user */
	bool               runas;           /* root: pass --runas swtpm_user */
	uid_t              swtpm_uid;       /* owner of dirs swtpm writes */
	gid_t              swtpm_gid;
	int                max_parallel;     /* concurrent jobs */
	bool               no_guardian;      /* plain state dirs, made here */
	bool               no_keybroker;     /* unencrypted state */
	bool               stop_on_exit;     /* stop every swtpm on SIGTERM */
	int                stop_timeout_ms;  /* CMD_SHUTDOWN -> SIGTERM */
	int                start_timeout_ms; /* spawn -> socket + CMD_INIT */
	int                req_timeout_ms;   /* guardian / broker requests */
	char               swtpm_dir[PATH_LEN]; /* <run>/swtpm */
	struct req_client *guardian;            /* NULL with no_guardian */
	struct req_client *keybroker;           /* NULL with no_keybroker */
	bool               sandbox;             /* per-VM uid and namespaces */
	uid_t              uid_lo, uid_hi;      /* --uid-range */
	int                rlim_nofile;         /* swtpm RLIMIT_NOFILE */
	int                rlim_as_mb;          /* RLIMIT_AS, 0 unlimited */
	int                rlim_core_mb;        /* RLIMIT_CORE */
	struct sandbox    *sbx;                 /* sandbox.c state, uid map */
};

/* What the main thread knows about one VM. */
enum vm_phase {
	VP_IDLE = 0, /* no swtpm */
	VP_RUNNING,  /* swtpm up, health-checked (or adopted) */
};
enum stop_op { STOP_NONE = 0, STOP_RELEASE, STOP_PURGE };
enum vm_action { ACT_NONE = 0, ACT_START, ACT_STOP };

struct vm {
	char                 uuid[UUID_LEN];
	struct domain_status dom;        /* last DomainStatus */
	bool                 have_dom;   /* dom is valid */
	int                  phase;      /* enum vm_phase */
	bool                 busy;       /* a job owns the process */
	bool                 prepared;   /* state dir in use: RELEASE due */
	bool                 want_start; /* a BOOTING waits to be served */
	int                  want_stop;  /* enum stop_op */
	bool                 forget;     /* delete VtpmStatus after stop */
	bool                 published;  /* a VtpmStatus item exists */
	pid_t                pid;
	int                  pidfd;   /* -1 when none */
	bool                 child;   /* ours (waitid), not adopted */
	struct vtpm_status   st;      /* what we publish */
	uint64_t             t_start; /* ms, for the log */
};

enum job_kind { JOB_START = 1, JOB_STOP };

/* One unit of blocking work; inputs copied from the vm, outputs applied
 * by the main thread when it comes back. */
struct job {
	int                kind; /* enum job_kind */
	struct vm         *vm;   /* main thread only */
	char               uuid[UUID_LEN];
	char               name[NAME_LEN];
	int                model, mode;
	int                ek;       /* JOB_START: enum vtpm_ek */
	int                stop_op;  /* JOB_STOP: enum stop_op */
	bool               prepared; /* JOB_STOP: RELEASE/PURGE due */
	pid_t              pid;      /* in (stop) and out (start) */
	int                pidfd;
	bool               child;
	int                rc; /* 0 ok, -1 failed (reason in st) */
	struct vtpm_status st; /* result to publish */
	struct job        *next;
};

/* vm.c: decisions, no I/O */
void vm_init(struct vm *vm, const char *uuid);
/* A DomainStatus item was set (d) or deleted from the topic (d NULL). */
void vm_on_domain(struct vm *vm, const struct domain_status *d);
/* What to do now; ACT_NONE while a job runs. May clear intents that need
 * no job (and set vm->st for a publication, returned in *publish:
 * 1 set, -1 delete, 0 nothing). */
int vm_next_action(struct vm *vm, int *publish);
/* Bounded string copy, always NUL-terminated. */
void vm_strcpy(char *dst, const char *src, size_t len);
/* Fill a status from the VM's DomainStatus. */
void vm_status_base(const struct vm *vm, struct vtpm_status *st, int state);

/* spawn.c: start one swtpm and health-check it */
#define SPAWN_MAX_ARGS 32
struct spawn_argv {
	char *argv[SPAWN_MAX_ARGS];
	char  buf[4096]; /* strings argv points into */
};
int spawn_paths(const struct launcher_cfg *cfg, const char *uuid, char *ctrl,
                char *pidfile, char *logfile, size_t len);
int spawn_build_argv(const struct launcher_cfg *cfg, const char *uuid,
                     const char *state_dir, int keyfd, struct spawn_argv *a);
/* Start swtpm (key: KEY_LEN bytes in secmem, or NULL); wait for the
 * control socket and run CMD_INIT. 0 ok; -1 with err, *init_failed true
 * when swtpm came up but CMD_INIT failed (the state is suspect). The
 * process (if any) is left to the caller in *pid and *pidfd. */
int spawn_start(const struct launcher_cfg *cfg, const char *uuid,
                const char *state_dir, const uint8_t *key, pid_t *pid,
                int *pidfd, bool *init_failed, char *err, size_t errlen);

/* sandbox.c (setup, checks, files), uidmap.c (the uid map), jail.c (the
 * child): one uid per VM, namespaces, no privileges (see sandbox.c) */
#define SBX_MAX_FILES  32 /* binary, interpreter, libraries, devices */
#define SBX_CHILD_FAIL 127
#define SBX_SCAN_MS    1000 /* /proc scans for uid users, at most every */

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

/* uidmap.c: read the map (entries outside the range are forgotten). */
int sbx_map_load(struct sandbox *s, const struct launcher_cfg *cfg);

/* Check what the sandbox needs (root, namespaces, the files swtpm runs
 * from, readable by the range's uids); load the uid map. No-op without
 * cfg->sandbox. -1 (logged) when it cannot work. */
int sbx_open(struct launcher_cfg *cfg);
/* The same checks without side effects (-n). */
int  sbx_check(const struct launcher_cfg *cfg);
void sbx_close(struct launcher_cfg *cfg);
/* Root: keep only the capabilities the launcher uses from now on (and
 * drop the rest from the bounding set); docs/integration.md lists them. */
int sbx_drop_caps(const struct launcher_cfg *cfg);
/* uuid's uid: recorded, or the lowest free one of the range (recorded
 * durably). -1 with err when the range is exhausted. */
int sbx_uid(const struct launcher_cfg *cfg, const char *uuid, uid_t *uid,
            char *err, size_t errlen);
/* Recorded uid of uuid, no allocation; -1 when none. */
int sbx_lookup(const struct launcher_cfg *cfg, const char *uuid, uid_t *uid);
/* Give uuid's uid back (its state was purged). */
void sbx_forget(const struct launcher_cfg *cfg, const char *uuid);
/* A live (not zombie) process whose effective uid is uid (of the
 * range), or 0. From a /proc scan at most a second old, rechecked. */
pid_t sbx_uid_user(const struct launcher_cfg *cfg, uid_t uid);
/* /proc/PID/comm, "" when gone. */
void sbx_comm(pid_t pid, char *comm, size_t len);
/* State directory and its files owned by uid (gid uid), dir 0700. */
int sbx_own_state(const char *dir, uid_t uid, char *err, size_t errlen);
/* A listening unix socket at path, 0600, owned by uid. */
int sbx_listen(const char *path, uid_t uid, char *err, size_t errlen);
/* A new file at path (replacing one), 0600, owned by uid; its fd. */
int sbx_open_file(const char *path, uid_t uid, char *err, size_t errlen);
/* Fork the sandboxed swtpm: fds[i] becomes fd i (-1: none), argv run
 * as uid. */
int sbx_spawn(const struct launcher_cfg *cfg, const char *state_dir, uid_t uid,
              int *fds, int nfds, char **argv, pid_t *pid, char *err,
              size_t errlen);
/* Can uid (gid) reach path (every ancestor searchable; a directory
 * rwx when use, else searchable)? why names it in err ("state
 * directory"). Without the sandbox, sbx_open checks the run and state
 * directories this way. */
int sbx_reach(const char *path, uid_t uid, gid_t gid, bool use, const char *why,
              char *err, size_t errlen);
/* The last lines of a log on one line (" | " between), "" if none. */
void sbx_log_tail(const char *logf, int lines, char *out, size_t len);

/* supervise.c: stop, reap, describe an exit */
/* Graceful stop: CMD_SHUTDOWN, SIGTERM after timeout_ms, SIGKILL. Closes
 * pidfd. 0 when the process is gone. */
int sup_stop(const struct launcher_cfg *cfg, const char *uuid, pid_t pid,
             int pidfd, bool child, char *how, size_t howlen);
/* The process behind a readable pidfd exited: reap (if child) and
 * describe it ("exited with status 1", "killed by signal 9"). Returns
 * the exit status, or -1 when unknown / signalled. */
int sup_reap(int pidfd, bool child, char *desc, size_t len);
/* Remove the ctrl, pid and meta files of uuid. */
void sup_cleanup_files(const struct launcher_cfg *cfg, const char *uuid);

/* adopt.c: take over swtpm processes of a previous launcher */
/* Is pid a swtpm serving uuid's control socket? 0 yes, -1 with err. */
int adopt_check(const struct launcher_cfg *cfg, const char *uuid, pid_t pid,
                char *err, size_t errlen);
int adopt_read_pidfile(const char *path, pid_t *pid);
/* Does uuid's pid file name a live swtpm (adopted or not)? */
bool adopt_live_swtpm(const struct launcher_cfg *cfg, const char *uuid,
                      pid_t *pid);
/* Meta file <uuid>.meta: what VtpmStatus said at READY. */
int adopt_write_meta(const struct launcher_cfg *cfg,
                     const struct vtpm_status  *st);
int adopt_read_meta(const struct launcher_cfg *cfg, const char *uuid,
                    struct vtpm_status *st);
/* Scan <run>/swtpm for live swtpm processes; fn is called for each one
 * that passes the identity check (pidfd open, st from the meta file). */
int adopt_scan(const struct launcher_cfg *cfg,
               void (*fn)(void *arg, const struct vtpm_status *st, pid_t pid,
                          int pidfd),
               void *arg);

/* guard.c: guardian and key broker, or their --no-* stand-ins */
int  guard_open(struct launcher_cfg *cfg);
void guard_close(struct launcher_cfg *cfg);
/* op on uuid's state; rep filled. -1 with err ("guardian unavailable:
 * ..." when no answer, "guardian: ..." when refused). */
int guard_op(const struct launcher_cfg *cfg, int op, const char *uuid, int mode,
             bool encrypted, struct guardian_rep *rep, char *err,
             size_t errlen);
/* Key release into key (KEY_LEN, secmem). 1 have key, 0 no key (reason
 * in why), -1 broker unavailable (err). */
int guard_key(const struct launcher_cfg *cfg, const char *uuid, uint8_t *key,
              char *why, size_t whylen);

/* ek.c: a new persistent vTPM's EKs (RSA template L-1 and ECC P-256
 * template L-2) and, with a key broker, their certificates (signed by the
 * device's AK) in NV 0x01c00002 and 0x01c0000a, through the control
 * channel's CMD_SET_DATAFD before any VM attaches. The EKs are flushed
 * (mode VTPM_EK_CERT) or the RSA one persisted at 0x81010001
 * (VTPM_EK_PERSIST). The TPM is left waiting for the VM firmware's own
 * TPM2_Startup. 0 or -1 with err; *certs counts the certificates
 * written. */
int lek_provision(const struct launcher_cfg *cfg, const char *uuid, int mode,
                  int *certs, char *err, size_t errlen);

/* start.c: the jobs */
void job_run(const struct launcher_cfg *cfg, struct job *j);

/* pool.c: worker threads */
struct pool;
int  pool_open(struct pool **pp, const struct launcher_cfg *cfg, int max);
void pool_close(struct pool *p); /* waits for running jobs */
/* Queue j (the pool owns it until pool_take_done hands it back); a free
 * worker of the fixed pool takes it. 0 (every worker exists from
 * pool_open on, so nothing can fail here). */
int pool_submit(struct pool *p, struct job *j);
/* Kept for the loop's retry path: with a fixed pool there is nothing to
 * start later; 0. */
int         pool_retry(struct pool *p);
int         pool_fd(struct pool *p);        /* readable when results wait */
struct job *pool_take_done(struct pool *p); /* list, or NULL */
int         pool_busy(struct pool *p);      /* jobs queued or running */

/* loop.c: the event loop */
struct launcher;
int launcher_open(struct launcher **lp, struct launcher_cfg *cfg);
/* Runs until *quit; returns 0. */
int  launcher_run(struct launcher *l, volatile sig_atomic_t *quit);
void launcher_close(struct launcher *l);

#endif
