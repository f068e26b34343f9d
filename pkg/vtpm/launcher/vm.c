/*
 * vm.c: what the launcher wants for one VM, from its DomainStatus.
 *
 * Events set intents (want_start, want_stop, forget); vm_next_action()
 * turns them into one job at a time. No I/O here, so every rule is unit
 * tested (tests/unit/launcher_test.c).
 *
 * Rules:
 *  - BOOTING with the vTPM enabled: start, unless a swtpm already runs
 *    with the same mode (a guest reboot keeps its swtpm).
 *  - BOOTING with a different mode than the running swtpm: stop, start.
 *  - HALTING / HALTED: stop (CMD_SHUTDOWN...), then RELEASE; STOPPED.
 *  - DELETED: stop, PURGE, delete the VtpmStatus item.
 *  - item gone from the topic: stop and RELEASE, delete the VtpmStatus
 *    item, but never PURGE (a restarted or confused domain manager must
 *    not destroy a TPM; only an explicit DELETED does).
 *  - vTPM disabled: no swtpm and no VtpmStatus item (one that runs is
 *    stopped and released).
 *  - vtpm.version other than "2.0" (TPM 1.2): FAILED, never started.
 *  - CREATING / RUNNING: nothing (a swtpm that died stays FAILED until
 *    the next BOOTING).
 */
#include "launcher.h"

#include <stdio.h>
#include <string.h>

void
vm_init(struct vm *vm, const char *uuid)
{
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->uuid, sizeof(vm->uuid), "%s", uuid);
	vm->pidfd = -1;
}

void
vm_status_base(const struct vm *vm, struct vtpm_status *st, int state)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->uuid, vm->uuid, sizeof(st->uuid));
	if (vm->have_dom) {
		memcpy(st->name, vm->dom.name, sizeof(st->name));
		st->model = vm->dom.vtpm.model;
		st->mode = vm->dom.vtpm.mode;
	} else {
		memcpy(st->name, vm->st.name, sizeof(st->name));
		st->model = vm->st.model;
		st->mode = vm->st.mode;
	}
	st->state = state;
	st->health = STATE_UNKNOWN;
}

void
vm_on_domain(struct vm *vm, const struct domain_status *d)
{
	if (d == NULL) {
		vm->have_dom = false;
		vm->want_start = false;
		if (vm->want_stop != STOP_PURGE) {
			vm->want_stop = STOP_RELEASE;
		}
		vm->forget = true;
		return;
	}
	vm->dom = *d;
	vm->have_dom = true;
	if (!d->vtpm.enabled && d->state != DOM_DELETED) {
		vm->want_start = false;
		if (vm->want_stop == STOP_NONE) {
			vm->want_stop = STOP_RELEASE;
		}
		vm->forget = true;
		return;
	}
	switch (d->state) {
	case DOM_BOOTING:
		vm->forget = false;
		if (vm->want_stop == STOP_PURGE) {
			/* delete, then re-created: purge first, then start */
			vm->want_start = true;
			break;
		}
		vm->want_stop = STOP_NONE;
		if (vm->phase == VP_RUNNING && vm->st.mode != d->vtpm.mode) {
			vm->want_stop = STOP_RELEASE;
		}
		vm->want_start = true;
		break;
	case DOM_HALTING:
	case DOM_HALTED:
		vm->want_start = false;
		if (vm->want_stop != STOP_PURGE) {
			vm->want_stop = STOP_RELEASE;
		}
		break;
	case DOM_DELETED:
		vm->want_start = false;
		vm->want_stop = STOP_PURGE;
		vm->forget = true;
		break;
	default: /* CREATING, RUNNING */
		break;
	}
}

int
vm_next_action(struct vm *vm, int *publish)
{
	*publish = 0;
	if (vm->busy) {
		return ACT_NONE;
	}
	if (vm->want_stop != STOP_NONE) {
		if (vm->phase == VP_RUNNING || vm->prepared ||
		    vm->want_stop == STOP_PURGE) {
			return ACT_STOP;
		}
		/* nothing runs and nothing to commit: just say so */
		vm->want_stop = STOP_NONE;
		if (vm->forget) {
			*publish = vm->published ? -1 : 0;
		} else if (vm->published && vm->st.state != VTPM_STOPPED) {
			int was = vm->st.state;
			vm_status_base(vm, &vm->st, VTPM_STOPPED);
			if (was == VTPM_FAILED) {
				snprintf(vm->st.reason, sizeof(vm->st.reason),
				         "VM halted");
			}
			*publish = 1;
		}
	}
	if (vm->want_start && vm->dom.vtpm.version[0] != '\0' &&
	    strcmp(vm->dom.vtpm.version, "2.0") != 0) {
		/* the domain manager rejects these; never start one anyway */
		vm->want_start = false;
		vm_status_base(vm, &vm->st, VTPM_FAILED);
		strfmt(vm->st.reason, sizeof(vm->st.reason),
		       "vTPM version %s is not supported (only 2.0)",
		       vm->dom.vtpm.version);
		*publish = 1;
		return ACT_NONE;
	}
	if (vm->want_start) {
		if (vm->phase == VP_RUNNING) {
			vm->want_start = false; /* a reboot keeps its swtpm */
			return ACT_NONE;
		}
		return ACT_START;
	}
	return ACT_NONE;
}

void
vm_strcpy(char *dst, const char *src, size_t len)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
