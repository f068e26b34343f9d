/*
 * fresh.c: vtpmctl accept-rollback UUID and vtpmctl freshness UUID, on the
 * key broker's admin socket (keybroker-admin, root only). accept-rollback
 * tells the broker to take the next state it finds for the VM as current
 * (a device put back from a real backup); the broker logs it and the
 * VM's next VtpmStatus says "older state accepted by the operator".
 */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
vctl_fresh(const char *rundir, int timeout_ms, bool accept, const char *uuid)
{
	struct fresh_req rq;
	struct fresh_rep rp;
	enum msg_type    rt;
	char             err[REASON_LEN];

	if (!uuid_valid(uuid)) {
		fprintf(stderr, "vtpmctl: %s: not a UUID\n", uuid);
		return 2;
	}
	if (accept && geteuid() != 0) {
		fprintf(stderr, "vtpmctl: accept-rollback is root's\n");
		return 1;
	}
	memset(&rq, 0, sizeof(rq));
	rq.op = accept ? FOP_ACCEPT : FOP_STATUS;
	strfmt(rq.uuid, sizeof(rq.uuid), "%s", uuid);
	if (req_call(rundir, "keybroker-admin", MSG_FRESH_REQ, &rq, &rt, &rp,
	             timeout_ms, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmctl: keybroker-admin: %s\n", err);
		return 3;
	}
	printf("%s %s counter %lld nv_writes %lld: %s\n", rp.uuid,
	       fresh_status_name(rp.status), (long long) rp.counter,
	       (long long) rp.nv_writes, rp.reason);
	return rp.status == FRESH_OK || rp.status == FRESH_OFF ? 0 : 1;
}
