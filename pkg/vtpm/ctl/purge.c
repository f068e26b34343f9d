/* purge.c: vtpmctl purge UUID: ask the guardian to remove a vTPM's state. */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"

#include <stdio.h>
#include <string.h>

int
vctl_purge(const char *rundir, const char *uuid, bool force, int timeout_ms)
{
	struct vctl_status     st;
	const struct vctl_row *r;
	struct guardian_req    req;
	struct guardian_rep    rep;
	enum msg_type          rt;
	char                   err[256];

	if (!uuid_valid(uuid)) {
		fprintf(stderr, "vtpmctl: purge: \"%s\" is not a UUID\n", uuid);
		return 2;
	}
	memset(&req, 0, sizeof(req));
	req.op = GOP_PURGE;
	snprintf(req.uuid, sizeof(req.uuid), "%s", uuid);
	vctl_status_fetch(&st, rundir, timeout_ms);
	r = vctl_status_find(&st, uuid);
	if (r != NULL) {
		req.mode = r->has_vtpm ? r->vt.mode : r->dom.vtpm.mode;
	}
	if (r != NULL && r->has_vtpm && r->vt.state == VTPM_READY) {
		if (!force) {
			fprintf(
			    stderr,
			    "vtpmctl: purge %s: its vTPM is READY (swtpm pid "
			    "%lld): halt the VM first, or use --force\n",
			    uuid, (long long) r->vt.pid);
			vctl_status_free(&st);
			return 1;
		}
		fprintf(stderr,
		        "vtpmctl: purge %s: vTPM is READY, purging anyway "
		        "(--force)\n",
		        uuid);
	}
	vctl_status_free(&st);
	if (req_call(rundir, "guardian", MSG_GUARDIAN_REQ, &req, &rt, &rep,
	             timeout_ms, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmctl: purge %s: guardian: %s\n", uuid, err);
		return 1;
	}
	if (!rep.ok) {
		fprintf(stderr, "vtpmctl: purge %s: refused: %s\n", uuid,
		        rep.reason[0] ? rep.reason : "no reason given");
		return 1;
	}
	printf("purged %s (%s)%s%s\n", uuid,
	       state_class_name(rep.classification), rep.reason[0] ? ": " : "",
	       rep.reason);
	return 0;
}
