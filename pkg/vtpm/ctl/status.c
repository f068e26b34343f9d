/* status.c: vtpmctl status: DomainStatus joined with VtpmStatus. */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct vctl_row *
row_get(struct vctl_status *st, const char *uuid)
{
	for (size_t i = 0; i < st->nrows; i++) {
		if (strcasecmp(st->rows[i].uuid, uuid) == 0) {
			return &st->rows[i];
		}
	}
	if (st->nrows == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		void  *p = realloc(st->rows, cap * sizeof(*st->rows));

		if (p == NULL) {
			return NULL;
		}
		st->rows = p;
		st->cap = cap;
	}
	struct vctl_row *r = &st->rows[st->nrows++];

	memset(r, 0, sizeof(*r));
	snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
	return r;
}

int
vctl_status_add_dom(struct vctl_status *st, const struct domain_status *d)
{
	struct vctl_row *r = row_get(st, d->uuid);

	if (r == NULL) {
		return -1;
	}
	r->has_dom = true;
	r->dom = *d;
	return 0;
}

int
vctl_status_add_vtpm(struct vctl_status *st, const struct vtpm_status *v)
{
	struct vctl_row *r = row_get(st, v->uuid);

	if (r == NULL) {
		return -1;
	}
	r->has_vtpm = true;
	r->vt = *v;
	return 0;
}

const struct vctl_row *
vctl_status_find(const struct vctl_status *st, const char *uuid)
{
	for (size_t i = 0; i < st->nrows; i++) {
		if (strcasecmp(st->rows[i].uuid, uuid) == 0) {
			return &st->rows[i];
		}
	}
	return NULL;
}

static void
fetch_dom(void *arg, const char *key, const void *item)
{
	(void) key;
	vctl_status_add_dom(arg, item);
}

static void
fetch_vtpm(void *arg, const char *key, const void *item)
{
	(void) key;
	vctl_status_add_vtpm(arg, item);
}

static int
by_name(const void *x, const void *y)
{
	const struct vctl_row *a = x, *b = y;
	const char            *na = a->has_dom ? a->dom.name : a->vt.name;
	const char            *nb = b->has_dom ? b->dom.name : b->vt.name;
	int                    c = strcmp(na, nb);

	return c != 0 ? c : strcmp(a->uuid, b->uuid);
}

int
vctl_status_fetch(struct vctl_status *st, const char *rundir, int timeout_ms)
{
	char err[256];

	memset(st, 0, sizeof(*st));
	if (topic_snapshot_fetch(rundir, MSG_DOMAIN_STATUS, fetch_dom, st,
	                         timeout_ms, err, sizeof(err)) < 0) {
		snprintf(st->dom_err, sizeof(st->dom_err), "%s", err);
	}
	if (topic_snapshot_fetch(rundir, MSG_VTPM_STATUS, fetch_vtpm, st,
	                         timeout_ms, err, sizeof(err)) < 0) {
		snprintf(st->vt_err, sizeof(st->vt_err), "%s", err);
	}
	if (st->nrows > 1) {
		qsort(st->rows, st->nrows, sizeof(*st->rows), by_name);
	}
	return 0;
}

void
vctl_status_free(struct vctl_status *st)
{
	free(st->rows);
	memset(st, 0, sizeof(*st));
}

const char *
vctl_row_state(const struct vctl_row *r)
{
	if (r->has_vtpm) {
		return vtpm_state_name(r->vt.state);
	}
	if (!r->has_dom) {
		return "?";
	}
	if (strncmp(r->dom.reason, "rejected:", 9) == 0) {
		return "REJECTED";
	}
	if (!r->dom.vtpm.enabled) {
		return "DISABLED";
	}
	if (r->dom.state == DOM_HALTED || r->dom.state == DOM_DELETED) {
		return "NONE";
	}
	return "PENDING";
}

const char *
vctl_row_reason(const struct vctl_row *r)
{
	if (r->has_vtpm && r->vt.reason[0] != '\0') {
		return r->vt.reason;
	}
	return r->has_dom ? r->dom.reason : "";
}

static const char *
row_name(const struct vctl_row *r)
{
	return r->has_dom ? r->dom.name : r->vt.name;
}

int
vctl_status_print_table(const struct vctl_status *st, FILE *f)
{
	fprintf(f,
	        "%-36s  %-14s  %-8s  %-8s  %-5s  %-10s  %-3s  %-8s  %7s  %s\n",
	        "UUID", "NAME", "DOMAIN", "VTPM", "MODEL", "MODE", "ENC",
	        "HEALTH", "PID", "REASON");
	for (size_t i = 0; i < st->nrows; i++) {
		const struct vctl_row *r = &st->rows[i];
		int  model = r->has_vtpm ? r->vt.model : r->dom.vtpm.model;
		int  mode = r->has_vtpm ? r->vt.mode : r->dom.vtpm.mode;
		char pid[24] = "-";

		if (r->has_vtpm && r->vt.pid > 0) {
			snprintf(pid, sizeof(pid), "%lld",
			         (long long) r->vt.pid);
		}
		fprintf(f,
		        "%-36s  %-14.14s  %-8s  %-8s  %-5s  %-10s  %-3s  %-8s  "
		        "%7s  "
		        "%s\n",
		        r->uuid, row_name(r),
		        r->has_dom ? dom_state_name(r->dom.state) : "-",
		        vctl_row_state(r), vtpm_model_name(model),
		        vtpm_mode_name(mode),
		        r->has_vtpm ? (r->vt.encrypted ? "yes" : "no") : "-",
		        r->has_vtpm ? state_class_name(r->vt.health) : "-", pid,
		        vctl_row_reason(r));
	}
	if (st->dom_err[0] != '\0') {
		fprintf(f, "# DomainStatus: %s (is domainmgr running?)\n",
		        st->dom_err);
	}
	if (st->vt_err[0] != '\0') {
		fprintf(f, "# VtpmStatus: %s (is vtpm-launcher running?)\n",
		        st->vt_err);
	}
	return ferror(f) ? -1 : 0;
}

int
vctl_status_print_json(const struct vctl_status *st, FILE *f)
{
	cJSON *arr = cJSON_CreateArray();
	char  *s;

	if (arr == NULL) {
		return -1;
	}
	for (size_t i = 0; i < st->nrows; i++) {
		const struct vctl_row *r = &st->rows[i];
		cJSON                 *o = cJSON_CreateObject();
		int model = r->has_vtpm ? r->vt.model : r->dom.vtpm.model;
		int mode = r->has_vtpm ? r->vt.mode : r->dom.vtpm.mode;

		if (o == NULL) {
			cJSON_Delete(arr);
			return -1;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "uuid", r->uuid);
		cJSON_AddStringToObject(o, "name", row_name(r));
		cJSON_AddStringToObject(o, "state", vctl_row_state(r));
		cJSON_AddStringToObject(o, "model", vtpm_model_name(model));
		cJSON_AddStringToObject(o, "mode", vtpm_mode_name(mode));
		cJSON_AddBoolToObject(o, "encrypted",
		                      r->has_vtpm && r->vt.encrypted);
		cJSON_AddStringToObject(o, "health",
		                        state_class_name(r->has_vtpm
		                                             ? r->vt.health
		                                             : STATE_UNKNOWN));
		cJSON_AddStringToObject(o, "ctrl_socket",
		                        r->has_vtpm ? r->vt.ctrl_socket : "");
		cJSON_AddNumberToObject(o, "pid",
		                        r->has_vtpm ? (double) r->vt.pid : 0);
		cJSON_AddStringToObject(o, "reason", vctl_row_reason(r));
		cJSON_AddStringToObject(
		    o, "domain_state",
		    r->has_dom ? dom_state_name(r->dom.state) : "");
		cJSON_AddBoolToObject(o, "vtpm_enabled",
		                      r->has_dom ? r->dom.vtpm.enabled
		                                 : r->has_vtpm);
	}
	s = cJSON_Print(arr); /* ours: freed below */
	cJSON_Delete(arr);
	if (s == NULL) {
		return -1;
	}
	fprintf(f, "%s\n", s);
	free(s);
	return ferror(f) ? -1 : 0;
}
