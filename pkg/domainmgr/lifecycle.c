/*
 * lifecycle.c: the decisions of the domain manager, with no I/O of its
 * own. The config says what each app should be; the launcher's VtpmStatus
 * and the VM processes say what is; dm_step() moves each app along
 *
 *   NEW -> CREATING -> BOOTING -> RUNNING -> HALTING -> HALTED
 *                 \________________________________/-> DELETED -> (gone)
 *
 * and publishes every state it enters (through dm_ops, so the unit tests
 * drive it with fakes).
 */
#include "domainmgr.h"

#include "common.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

void
dm_init(struct dm *dm, const struct dm_ops *ops, const struct dm_timeouts *to)
{
	static const struct dm_timeouts def = DM_TIMEOUTS_DEFAULT;

	memset(dm, 0, sizeof(*dm));
	dm->ops = *ops;
	dm->to = to != NULL ? *to : def;
}

void
dm_free(struct dm *dm)
{
	free(dm->apps);
	memset(dm, 0, sizeof(*dm));
}

struct dm_app *
dm_find(struct dm *dm, const char *uuid)
{
	for (size_t i = 0; i < dm->napps; i++) {
		if (strcasecmp(dm->apps[i].uuid, uuid) == 0) {
			return &dm->apps[i];
		}
	}
	return NULL;
}

size_t
dm_running_vms(const struct dm *dm)
{
	size_t n = 0;

	for (size_t i = 0; i < dm->napps; i++) {
		n += dm->apps[i].vm_pid > 0;
	}
	return n;
}

static struct dm_app *
app_add(struct dm *dm, const char *uuid, uint64_t now)
{
	struct dm_app *a;

	if (dm->napps == dm->cap) {
		size_t cap = dm->cap ? 2 * dm->cap : 16;
		void  *p = realloc(dm->apps, cap * sizeof(*dm->apps));

		if (p == NULL) {
			log_warnx("app %s: out of memory", uuid);
			return NULL;
		}
		dm->apps = p;
		dm->cap = cap;
	}
	a = &dm->apps[dm->napps++];
	memset(a, 0, sizeof(*a));
	snprintf(a->uuid, sizeof(a->uuid), "%s", uuid);
	a->state = DM_STATE_NEW;
	a->since_ms = now;
	return a;
}

static bool
spec_equal(const struct vtpm_spec *x, const struct vtpm_spec *y)
{
	return x->enabled == y->enabled && x->model == y->model &&
	       x->mode == y->mode && strcmp(x->version, y->version) == 0;
}

/* The DomainStatus this app should show now. */
static void
compose(const struct dm_app *a, struct domain_status *ds)
{
	memset(ds, 0, sizeof(*ds));
	memcpy(ds->uuid, a->uuid, sizeof(ds->uuid));
	memcpy(ds->name, a->name, sizeof(ds->name));
	ds->state = a->state;
	ds->vtpm = a->spec;
	if (a->cfg_error[0] != '\0' && a->ever_valid) {
		strfmt(ds->reason, sizeof(ds->reason),
		       "%s%sconfig entry rejected, last good settings kept: %s",
		       a->base_reason, a->base_reason[0] ? "; " : "",
		       a->cfg_error);
	} else {
		snprintf(ds->reason, sizeof(ds->reason), "%s", a->base_reason);
	}
}

static void
publish(struct dm *dm, struct dm_app *a)
{
	struct domain_status ds;

	compose(a, &ds);
	if (a->published && memcmp(&ds, &a->pub, sizeof(ds)) == 0) {
		return;
	}
	if (dm->ops.publish(dm->ops.arg, &ds) < 0) {
		log_warnx("app %s: cannot publish DomainStatus %s", a->uuid,
		          dom_state_name(ds.state));
		return;
	}
	a->pub = ds;
	a->published = true;
}

static void
set_state(struct dm *dm, struct dm_app *a, int state, const char *reason,
          uint64_t now)
{
	if (a->state != state) {
		log_info("app %s (%s): %s -> %s%s%s", a->uuid, a->name,
		         a->state == DM_STATE_NEW ? "NEW"
		                                  : dom_state_name(a->state),
		         dom_state_name(state), reason[0] ? ": " : "", reason);
	}
	a->state = state;
	snprintf(a->base_reason, sizeof(a->base_reason), "%s", reason);
	a->since_ms = now;
	a->warned_ms = now;
	publish(dm, a);
}

void
dm_apply_config(struct dm *dm, const struct dmcfg *cfg, uint64_t now)
{
	for (size_t i = 0; i < dm->napps; i++) {
		dm->apps[i].in_config = false;
	}
	for (size_t i = 0; i < cfg->napps; i++) {
		const struct dmcfg_app *c = &cfg->apps[i];
		struct dm_app          *a;

		if (c->uuid[0] == '\0') {
			continue; /* no usable key: only the log can say it */
		}
		a = dm_find(dm, c->uuid);
		if (a == NULL && (a = app_add(dm, c->uuid, now)) == NULL) {
			continue;
		}
		if (a->in_config) {
			continue; /* a duplicate: the first copy decided */
		}
		a->in_config = true;
		if (!c->valid) {
			snprintf(a->cfg_error, sizeof(a->cfg_error), "%s",
			         c->detail);
			if (!a->ever_valid) {
				snprintf(a->name, sizeof(a->name), "%s",
				         c->name);
			}
			continue;
		}
		if (a->ever_valid && !spec_equal(&a->want, &c->vtpm) &&
		    (a->state == DOM_BOOTING || a->state == DOM_RUNNING)) {
			log_info("app %s (%s): new vtpm settings apply at its "
			         "next boot",
			         a->uuid, c->name);
		}
		a->cfg_error[0] = '\0';
		a->ever_valid = true;
		a->activate = c->activate;
		a->want = c->vtpm;
		a->boot_request = c->activate;
		memcpy(a->name, c->name, sizeof(a->name));
	}
}

/* BOOTING begins: remember whether the launcher's current answer is a
 * FAILED from before (the next boot must not be decided by it). */
static void
enter_booting(struct dm *dm, struct dm_app *a, uint64_t now)
{
	struct vtpm_status v;

	a->spec = a->want;
	a->boot_request = false;
	a->boot_stale = a->spec.enabled &&
	                dm->ops.vtpm_get(dm->ops.arg, a->uuid, &v) == 0 &&
	                v.state == VTPM_FAILED;
	a->boot_events = a->vt_events;
	set_state(dm, a, DOM_BOOTING, "", now);
}

void
dm_vtpm_event(struct dm *dm, const char *uuid)
{
	struct dm_app *a = dm_find(dm, uuid);

	if (a != NULL) {
		a->vt_events++;
	}
}

/* Is the launcher done with this app's swtpm? */
static bool
vtpm_quiet(struct dm *dm, const struct dm_app *a, bool for_delete)
{
	struct vtpm_status v;

	if (!a->spec.enabled ||
	    dm->ops.vtpm_get(dm->ops.arg, a->uuid, &v) < 0) {
		return true;
	}
	if (for_delete) {
		return v.state == VTPM_STOPPED;
	}
	return v.state == VTPM_STOPPED || v.state == VTPM_FAILED;
}

static void
vm_signal(struct dm *dm, struct dm_app *a, bool force, uint64_t now)
{
	if (a->vm_pid <= 0 || dm->ops.vm_signal == NULL) {
		return;
	}
	log_info("app %s (%s): %s vm pid %d", a->uuid, a->name,
	         force ? "killing" : "stopping", (int) a->vm_pid);
	dm->ops.vm_signal(dm->ops.arg, a, force);
	if (force) {
		a->vm_killed = true;
	} else {
		a->vm_stopping = true;
		a->vm_stop_ms = now;
	}
}

/* BOOTING: start the VM once the vTPM is READY (or has FAILED, or the app
 * has none). Returns true when the app moved on. */
static bool
try_boot(struct dm *dm, struct dm_app *a, uint64_t now)
{
	struct vtpm_status v;
	const char        *ctrl = NULL;
	char               reason[REASON_LEN] = "", err[REASON_LEN] = "";

	if (a->spec.enabled) {
		if (dm->ops.vtpm_get(dm->ops.arg, a->uuid, &v) < 0 ||
		    (v.state != VTPM_READY && v.state != VTPM_FAILED)) {
			if (now - a->warned_ms >= dm->to.warn_ms) {
				log_warnx(
				    "app %s (%s): still waiting for its "
				    "vTPM after %llu ms (is the launcher "
				    "running?)",
				    a->uuid, a->name,
				    (unsigned long long) (now - a->since_ms));
				a->warned_ms = now;
			}
			return false;
		}
		if (v.state == VTPM_FAILED && a->boot_stale &&
		    a->vt_events == a->boot_events &&
		    now - a->since_ms < dm->to.halt_ms) {
			return false; /* the last boot's answer: wait for this
			                 one */
		}
		if (v.state == VTPM_READY && v.ctrl_socket[0] != '\0') {
			ctrl = v.ctrl_socket;
		} else {
			/* the VM still boots, without a TPM, and says why */
			snprintf(reason, sizeof(reason), "vtpm failed: %.240s",
			         v.reason[0] ? v.reason
			                     : (v.state == VTPM_READY
			                            ? "READY without a socket"
			                            : "no reason given"));
			log_warnx("app %s (%s): booting without a TPM: %s",
			          a->uuid, a->name, reason);
		}
	}
	if (dm->ops.vm_start != NULL) {
		pid_t pid = 0;

		if (dm->ops.vm_start(dm->ops.arg, a, ctrl, &pid, err,
		                     sizeof(err)) < 0) {
			char why[REASON_LEN];

			snprintf(why, sizeof(why), "vm start failed: %.230s",
			         err);
			log_warnx("app %s (%s): %s", a->uuid, a->name, why);
			set_state(dm, a, DOM_HALTING, why, now);
			return true;
		}
		a->vm_pid = pid;
		a->vm_stopping = false;
		a->vm_killed = false;
		log_info("app %s (%s): vm pid %d started%s%s", a->uuid, a->name,
		         (int) pid, ctrl ? " with TPM " : " without a TPM",
		         ctrl ? ctrl : "");
	}
	set_state(dm, a, DOM_RUNNING, reason, now);
	return true;
}

/* One transition, if any is due. true when the state changed. */
/* advance() for each state that takes more than a few lines: true when
 * the app moved on (step again), false when it waits. */
static bool
from_new(struct dm *dm, struct dm_app *a, uint64_t now)
{
	if (!a->in_config) {
		a->gone = true; /* never published */
		return false;
	}
	if (!a->ever_valid) {
		char why[REASON_LEN];

		snprintf(why, sizeof(why), "rejected: %.246s", a->cfg_error);
		set_state(dm, a, DOM_HALTED, why, now);
		return false;
	}
	a->spec = a->want;
	if (!a->activate) {
		set_state(dm, a, DOM_HALTED, "", now);
		return false;
	}
	set_state(dm, a, DOM_CREATING, "", now);
	return true;
}

/* The VM is stopped (SIGTERM, SIGKILL after vm_kill_ms), then the vTPM
 * given halt_ms to stop. */
static bool
from_halting(struct dm *dm, struct dm_app *a, uint64_t now)
{
	if (a->vm_pid > 0) {
		if (!a->vm_stopping) {
			vm_signal(dm, a, false, now);
		} else if (!a->vm_killed &&
		           now - a->vm_stop_ms >= dm->to.vm_kill_ms) {
			log_warnx("app %s (%s): vm pid %d ignored "
			          "SIGTERM for %u ms",
			          a->uuid, a->name, (int) a->vm_pid,
			          dm->to.vm_kill_ms);
			vm_signal(dm, a, true, now);
		}
		return false; /* dm_vm_exited() moves on */
	}
	if (!vtpm_quiet(dm, a, false)) {
		if (now - a->since_ms < dm->to.halt_ms) {
			return false;
		}
		log_warnx("app %s (%s): vTPM still running %u ms after "
		          "HALTING; halted anyway",
		          a->uuid, a->name, dm->to.halt_ms);
	}
	if (!a->in_config) {
		set_state(dm, a, DOM_DELETED, "", now);
	} else {
		/* keep the reason (vm exited...) while halted */
		char why[REASON_LEN];

		snprintf(why, sizeof(why), "%s", a->base_reason);
		set_state(dm, a, DOM_HALTED, why, now);
	}
	return true;
}

static bool
from_halted(struct dm *dm, struct dm_app *a, uint64_t now, bool want_run)
{
	if (!a->in_config) {
		set_state(dm, a, DOM_DELETED, "", now);
		return true;
	}
	if (!a->ever_valid) {
		char why[REASON_LEN];

		snprintf(why, sizeof(why), "rejected: %.246s", a->cfg_error);
		snprintf(a->base_reason, sizeof(a->base_reason), "%s", why);
		return false;
	}
	if (want_run && a->boot_request) {
		enter_booting(dm, a, now);
		return true;
	}
	if (!a->activate) {
		/* halted on purpose: show what it would boot with */
		a->spec = a->want;
		a->base_reason[0] = '\0';
	}
	return false;
}

/* The item lingers (linger_ms), waits for the launcher's STOPPED (up to
 * delete_ms), then goes. */
static bool
from_deleted(struct dm *dm, struct dm_app *a, uint64_t now)
{
	if (a->in_config) {
		/* listed again before its item went: a new app */
		a->state = DM_STATE_NEW;
		return true;
	}
	if (now - a->since_ms < dm->to.linger_ms) {
		return false;
	}
	if (!vtpm_quiet(dm, a, true) && now - a->since_ms < dm->to.delete_ms) {
		return false;
	}
	if (!vtpm_quiet(dm, a, true)) {
		log_warnx("app %s (%s): launcher did not report STOPPED "
		          "within %u ms; item removed anyway",
		          a->uuid, a->name, dm->to.delete_ms);
	}
	if (dm->ops.unpublish(dm->ops.arg, a->uuid) < 0) {
		log_warnx("app %s: cannot remove DomainStatus item", a->uuid);
		return false;
	}
	log_info("app %s (%s): item removed", a->uuid, a->name);
	a->gone = true;
	return false;
}

static bool
advance(struct dm *dm, struct dm_app *a, uint64_t now)
{
	bool want_run = a->in_config && a->ever_valid && a->activate;

	switch (a->state) {
	case DM_STATE_NEW:
		return from_new(dm, a, now);
	case DOM_CREATING:
		if (!a->in_config) {
			set_state(dm, a, DOM_DELETED, "", now);
		} else if (!want_run) {
			set_state(dm, a, DOM_HALTED, "", now);
		} else {
			enter_booting(dm, a, now);
		}
		return true;
	case DOM_BOOTING:
		if (!a->in_config) {
			set_state(dm, a, DOM_DELETED, "", now);
			return true;
		}
		if (!want_run) {
			set_state(dm, a, DOM_HALTING, "", now);
			return true;
		}
		return try_boot(dm, a, now);
	case DOM_RUNNING:
		if (!want_run) {
			vm_signal(dm, a, false, now);
			set_state(dm, a, DOM_HALTING,
			          a->in_config ? "" : "removed from config",
			          now);
			return true;
		}
		return false;
	case DOM_HALTING:
		return from_halting(dm, a, now);
	case DOM_HALTED:
		return from_halted(dm, a, now, want_run);
	case DOM_DELETED:
		return from_deleted(dm, a, now);
	}
	return false;
}

/* Milliseconds until this app has something to do by itself. */
static int
app_wakeup(const struct dm *dm, const struct dm_app *a, uint64_t now)
{
	uint64_t due = 0;
	uint64_t el = now - a->since_ms;

	switch (a->state) {
	case DOM_BOOTING:
		due = a->warned_ms + dm->to.warn_ms;
		if (a->boot_stale && a->since_ms + dm->to.halt_ms < due) {
			due = a->since_ms + dm->to.halt_ms;
		}
		break;
	case DOM_HALTING:
		if (a->vm_pid > 0) {
			if (a->vm_killed) {
				return -1;
			}
			due = a->vm_stop_ms + dm->to.vm_kill_ms;
		} else {
			due = a->since_ms + dm->to.halt_ms;
		}
		break;
	case DOM_DELETED:
		due = a->since_ms + (el < dm->to.linger_ms ? dm->to.linger_ms
		                                           : dm->to.delete_ms);
		break;
	default:
		return -1;
	}
	/* events (VtpmStatus, vm exit) also call dm_step: the timers only
	 * bound the wait */
	return due > now ? (int) (due - now) : 0;
}

int
dm_step(struct dm *dm, uint64_t now)
{
	int    wake = -1;
	size_t j = 0;

	for (size_t i = 0; i < dm->napps; i++) {
		struct dm_app *a = &dm->apps[i];

		for (int n = 0; n < 8 && advance(dm, a, now); n++) {
		}
		if (!a->gone && a->state != DM_STATE_NEW) {
			publish(dm, a); /* reason or name may have changed */
		}
	}
	for (size_t i = 0; i < dm->napps; i++) {
		if (!dm->apps[i].gone) {
			if (j != i) {
				dm->apps[j] = dm->apps[i];
			}
			j++;
		}
	}
	dm->napps = j;
	for (size_t i = 0; i < dm->napps; i++) {
		int w = app_wakeup(dm, &dm->apps[i], now);

		if (w >= 0 && (wake < 0 || w < wake)) {
			wake = w;
		}
	}
	return wake;
}

int
dm_vm_exited(struct dm *dm, pid_t pid, int status, uint64_t now)
{
	char how[64];

	if (WIFEXITED(status)) {
		snprintf(how, sizeof(how), "exit status %d",
		         WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		snprintf(how, sizeof(how), "signal %d", WTERMSIG(status));
	} else {
		snprintf(how, sizeof(how), "status 0x%x", status);
	}
	for (size_t i = 0; i < dm->napps; i++) {
		struct dm_app *a = &dm->apps[i];

		if (a->vm_pid != pid) {
			continue;
		}
		a->vm_pid = 0;
		if (a->vm_stopping) {
			log_info("app %s (%s): vm pid %d stopped (%s)", a->uuid,
			         a->name, (int) pid, how);
		} else {
			char why[REASON_LEN];

			snprintf(why, sizeof(why), "vm exited (%s)", how);
			log_warnx(
			    "app %s (%s): vm pid %d exited by itself (%s)",
			    a->uuid, a->name, (int) pid, how);
			if (a->state == DOM_RUNNING) {
				set_state(dm, a, DOM_HALTING, why, now);
			}
		}
		a->vm_stopping = false;
		a->vm_killed = false;
		return 0;
	}
	return -1;
}

int
dm_stop_all(struct dm *dm, bool force)
{
	int n = 0;

	for (size_t i = 0; i < dm->napps; i++) {
		struct dm_app *a = &dm->apps[i];

		if (a->vm_pid > 0 && dm->ops.vm_signal != NULL) {
			dm->ops.vm_signal(dm->ops.arg, a, force);
			a->vm_stopping = true;
			n++;
		}
	}
	return n;
}
