/*
 * domainmgr.h: the reference domain manager. It reads the deployment
 * config the remote controller delivers, drives every app instance through
 * CREATING -> BOOTING -> RUNNING (HALTING -> HALTED, DELETED), publishes
 * that as DomainStatus and, with --qemu, runs one QEMU per app.
 */
#ifndef VTPM_DOMAINMGR_H
#define VTPM_DOMAINMGR_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DMCFG_MAX_BYTES (4u << 20) /* a config file larger is refused */
#define DMCFG_MAX_APPS  4096

/* config.c */

/* One app instance of the deployment config, as parsed. */
struct dmcfg_app {
	int              index;          /* position in the "apps" array */
	bool             valid;          /* false: rejected, error says why */
	char             uuid[UUID_LEN]; /* "" when the uuid itself is bad */
	char             name[NAME_LEN];
	bool             activate; /* default true: boot it */
	struct vtpm_spec vtpm;
	char             error[REASON_LEN];  /* names app and field (logs) */
	char             detail[REASON_LEN]; /* the same without the app */
};

struct dmcfg {
	struct dmcfg_app *apps; /* every entry, valid or not, in file order */
	size_t            napps;
	size_t            nerrors; /* entries with valid == false */
};

/* Parse a whole config document (len bytes, need not be NUL-terminated).
 * -1 with err filled when the document as a whole is unusable (bad JSON,
 * no "apps" list, too large): the caller keeps its last good config.
 * Otherwise 0: each entry is valid or carries its own error; duplicate
 * UUIDs reject every entry that shares the UUID. */
int dmcfg_parse(const char *buf, size_t len, struct dmcfg *cfg, char *err,
                size_t errlen);
/* Read and parse a file; errors name the path. */
int  dmcfg_load(const char *path, struct dmcfg *cfg, char *err, size_t errlen);
void dmcfg_free(struct dmcfg *cfg);
/* The valid entry with this uuid, or NULL. */
const struct dmcfg_app *dmcfg_find(const struct dmcfg *cfg, const char *uuid);

/* lifecycle.c */

/* Not yet published: the first step decides CREATING or HALTED. */
#define DM_STATE_NEW (-1)

/* One app as the domain manager tracks it. */
struct dm_app {
	char uuid[UUID_LEN];
	char name[NAME_LEN];
	int  state; /* enum dom_state, or DM_STATE_NEW */
	/* the vTPM settings of the current boot (published) */
	struct vtpm_spec spec;
	char base_reason[REASON_LEN]; /* why this state (vtpm failed...) */

	/* what the config wants */
	bool             in_config;  /* listed (valid or not) in the config */
	bool             ever_valid; /* has had a valid entry at least once */
	bool             activate;
	bool             boot_request; /* a config (re)load asks it to run */
	struct vtpm_spec want;         /* applies at the next boot */
	char             cfg_error[REASON_LEN]; /* entry rejected: why */

	pid_t    vm_pid;      /* QEMU, 0 when none */
	bool     vm_stopping; /* SIGTERM sent */
	bool     vm_killed;   /* SIGKILL sent */
	uint64_t vm_stop_ms;  /* when SIGTERM was sent */
	uint64_t since_ms;    /* entered the current state */
	uint64_t warned_ms;   /* last "still waiting" warning */
	bool     gone;        /* item unpublished: drop at the end of step */

	struct domain_status pub; /* what was last published */
	bool                 published;

	/* A FAILED VtpmStatus left from an earlier boot must not decide this
	 * one: at BOOTING it is stale until the launcher publishes again. */
	uint64_t vt_events;   /* VtpmStatus publications seen for this app */
	uint64_t boot_events; /* vt_events when BOOTING began */
	bool     boot_stale;  /* BOOTING began with a FAILED status */
};

/* What the lifecycle needs from the outside world (the daemon gives real
 * ones, the unit tests fakes). Every callback gets ops->arg. */
struct dm_ops {
	void *arg;
	/* publish the app's DomainStatus (set) or remove its item */
	int (*publish)(void *arg, const struct domain_status *ds);
	int (*unpublish)(void *arg, const char *uuid);
	/* the launcher's current VtpmStatus for uuid: 0, or -1 when absent */
	int (*vtpm_get)(void *arg, const char *uuid, struct vtpm_status *out);
	/* start the VM; ctrl_socket NULL = without a TPM device. NULL
	 * vm_start = no VMs are run (the default without --qemu). */
	int (*vm_start)(void *arg, const struct dm_app *a,
	                const char *ctrl_socket, pid_t *pid, char *err,
	                size_t errlen);
	/* signal the VM (SIGTERM, or SIGKILL when force) */
	void (*vm_signal)(void *arg, const struct dm_app *a, bool force);
};

struct dm_timeouts {
	unsigned halt_ms;    /* HALTING: wait for the vTPM to stop (10000) */
	unsigned delete_ms;  /* DELETED: wait for the launcher (10000) */
	unsigned linger_ms;  /* DELETED: published at least this long (2000) */
	unsigned vm_kill_ms; /* SIGTERM -> SIGKILL for QEMU (5000) */
	unsigned warn_ms;    /* BOOTING: warn while waiting for vTPM (30000) */
};
#define DM_TIMEOUTS_DEFAULT                                                    \
	{                                                                      \
		10000, 10000, 2000, 5000, 30000                                \
	}

struct dm {
	struct dm_app     *apps;
	size_t             napps, cap;
	struct dm_ops      ops;
	struct dm_timeouts to;
};

void dm_init(struct dm *dm, const struct dm_ops *ops,
             const struct dm_timeouts *to);
void dm_free(struct dm *dm);
/* A new good config: every listed app, activated or not; apps missing
 * from it go to DELETED. Rejected entries of known apps keep the last good
 * settings (and publish the error in reason); rejected new apps are
 * published HALTED with the error. */
void dm_apply_config(struct dm *dm, const struct dmcfg *cfg, uint64_t now);
/* Advance every app as far as it can go now. Returns the milliseconds
 * after which it wants to run again (-1: only on an event). */
int dm_step(struct dm *dm, uint64_t now);
/* A VM process exited (waitpid status). 0 when the pid was one of ours. */
int dm_vm_exited(struct dm *dm, pid_t pid, int status, uint64_t now);
/* Terminate every VM (daemon shutdown); returns how many were signalled. */
int dm_stop_all(struct dm *dm, bool force);
/* The launcher published (or removed) uuid's VtpmStatus. */
void           dm_vtpm_event(struct dm *dm, const char *uuid);
struct dm_app *dm_find(struct dm *dm, const char *uuid);
size_t         dm_running_vms(const struct dm *dm);

/* qemu.c */

struct dm_qemu {
	const char *binary;    /* default qemu-system-x86_64 */
	const char *kernel;    /* required */
	const char *initrd;    /* optional */
	const char *append;    /* default "console=ttyS0" */
	const char *memory;    /* default "256" (MiB) */
	const char *serial;    /* template: %u uuid, %n name, %% */
	const char *extra[16]; /* --qemu-arg, appended verbatim */
	int         nextra;
};

#define DM_QEMU_ARGV_MAX 64
/* Expand the serial log template for one app into dst. */
int dm_qemu_serial_path(const struct dm_qemu *q, const struct dm_app *a,
                        char *dst, size_t len);
/* Build QEMU's argv (strings point into q, a, ctrl_socket and bufs).
 * ctrl_socket NULL: no TPM. -1 with err when an argument cannot be used
 * (a comma in a path that QEMU would split on). */
struct dm_qemu_bufs {
	char serial[4096 + 16];
	char chardev[SOCK_LEN + 64];
	char device[64];
	char uuid[UUID_LEN];
};
int dm_qemu_argv(const struct dm_qemu *q, const struct dm_app *a,
                 const char *ctrl_socket, const char **argv, size_t max,
                 struct dm_qemu_bufs *bufs, char *err, size_t errlen);
/* posix_spawn QEMU: stdin and stdout /dev/null, stderr inherited, own
 * process group, no blocked signals. */
int dm_qemu_spawn(const struct dm_qemu *q, const struct dm_app *a,
                  const char *ctrl_socket, pid_t *pid, char *err,
                  size_t errlen);

/* daemon.c */

struct dm_daemon_opts {
	const char        *rundir;
	const char        *config; /* path of the deployment config */
	bool               qemu;   /* run VMs */
	struct dm_qemu     q;
	struct dm_timeouts to;
};
struct dm_daemon;
/* Signalfd, config watch, DomainStatus topic, VtpmStatus subscription,
 * first config load. o must outlive the daemon. Call after
 * dm_block_signals. 0 or -1 (logged). */
int dm_daemon_open(struct dm_daemon **dp, const struct dm_daemon_opts *o);
/* The event loop: until SIGTERM/SIGINT (0) or a poll error (-1). */
int dm_daemon_run(struct dm_daemon *d);
/* Stop the VMs (halt, then kill), close everything. NULL is fine. */
void dm_daemon_close(struct dm_daemon *d);
/* Block SIGHUP, SIGTERM, SIGINT, SIGCHLD in the calling thread (and the
 * threads it creates later). */
int dm_block_signals(void);

#endif
