/*
 * vtpmctl.h: the operator CLI. It owns nothing: it reads the topics
 * (DomainStatus, VtpmStatus), sends requests (GuardianRequest) and
 * bridges a terminal or a TCTI to a vTPM.
 */
#ifndef VTPM_VTPMCTL_H
#define VTPM_VTPMCTL_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* status.c */

/* One VM as vtpmctl shows it: its DomainStatus joined with its
 * VtpmStatus by UUID; either may be missing. */
struct vctl_row {
	char                 uuid[UUID_LEN];
	bool                 has_dom, has_vtpm;
	struct domain_status dom;
	struct vtpm_status   vt;
};

struct vctl_status {
	struct vctl_row *rows;
	size_t           nrows, cap;
	/* why a topic could not be read ("" when it was) */
	char dom_err[256];
	char vt_err[256];
};

/* Fetch both topics from rundir (each bounded by timeout_ms). A topic
 * whose publisher is absent is reported in dom_err/vt_err, not failed. */
int  vctl_status_fetch(struct vctl_status *st, const char *rundir,
                       int timeout_ms);
void vctl_status_free(struct vctl_status *st);
/* Join helpers (the unit tests feed items directly). */
int vctl_status_add_dom(struct vctl_status *st, const struct domain_status *d);
int vctl_status_add_vtpm(struct vctl_status *st, const struct vtpm_status *v);
const struct vctl_row *vctl_status_find(const struct vctl_status *st,
                                        const char               *uuid);
/* The state column: the VtpmStatus state, or, without one, DISABLED (the
 * app has no vTPM), REJECTED (its config entry was refused) or PENDING
 * (waiting for the launcher). */
const char *vctl_row_state(const struct vctl_row *r);
const char *vctl_row_reason(const struct vctl_row *r);
/* Write as a table or as a JSON array. 0 or -1. */
int vctl_status_print_table(const struct vctl_status *st, FILE *f);
int vctl_status_print_json(const struct vctl_status *st, FILE *f);

/* watch.c: print every change of the topics until a signal or a count */
int vctl_watch(const char *rundir, bool dom, bool vtpm, long count,
               int timeout_ms);

/* purge.c: GuardianRequest PURGE, refused while the vTPM is READY
 * unless force. Returns the exit code. */
int vctl_purge(const char *rundir, const char *uuid, bool force,
               int timeout_ms);

/* tpm.c: stdin/stdout <-> the vTPM's TPM channel (CMD_SET_DATAFD), for
 * the tpm2-tss cmd TCTI. Returns the exit code (3: not in this build). */
int vctl_tpm_bridge(const char *rundir, const char *uuid, int timeout_ms);

/* keys.c: the key broker's admin socket: "keys status", "keys announce
 * FILE" (a planned update's predicted PCR values). Returns the exit code
 * (1: the broker answered with a failure, 3: no answer). */
struct key_admin_rep;
int vctl_keys(const char *rundir, int timeout_ms, int argc, char **argv);
int vctl_keys_print(const struct key_admin_rep *r, FILE *f);
/* attest.c: vtpmctl attest UUID | --device | --activate FILE |
 * --set-ak-cert FILE. Returns the exit code. */
int vctl_attest(const char *rundir, int argc, char **argv, int timeout_ms);

#endif
