/* keys.c: vtpmctl keys status|announce: the key broker's admin socket
 * (keybroker-admin, root only): the sealed policy, a planned update. */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"
#include "keyfmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
hexline(FILE *f, const uint8_t *p, size_t n)
{
	char hex[2 * 64 + 1];

	hex_encode(p, n, hex, sizeof(hex));
	fputs(hex, f);
}

/* The reply in words (the JSON form is the message itself). */
int
vctl_keys_print(const struct key_admin_rep *r, FILE *f)
{
	fprintf(f, "key broker: %s%s%s\n", key_status_name(r->status),
	        r->reason[0] ? ": " : "", r->reason);
	if (r->branches < 1) {
		return 0;
	}
	fprintf(f, "sealed policy: sha256 PCRs %s, %lld branch%s%s\n", r->pcrs,
	        (long long) r->branches, r->branches > 1 ? "es" : "",
	        r->branches > 1 ? " (PolicyOR)" : " (PolicyPCR)");
	fprintf(f, "  branch 0 (current):   ");
	hexline(f, r->digest0, sizeof(r->digest0));
	fprintf(f, "\n");
	if (r->branches > 1) {
		fprintf(f, "  branch 1 (predicted): ");
		hexline(f, r->digest1, sizeof(r->digest1));
		fprintf(f, "\n");
	}
	if (r->matches >= 0) {
		fprintf(f, "PCRs now match: branch %lld (%s)\n",
		        (long long) r->matches,
		        r->matches == 0 ? "current" : "predicted");
	} else {
		fprintf(f, "PCRs now match: no branch%s%s\n",
		        r->changed_pcrs[0] ? "; changed: " : "",
		        r->changed_pcrs);
	}
	if (r->pending) {
		fprintf(f,
		        "pending update: yes (boots on the old image %lld of "
		        "%lld)\n",
		        (long long) r->boots_seen,
		        (long long) r->pending_boots);
	} else {
		fprintf(f, "pending update: no\n");
	}
	fprintf(f, "escrow: %s%s%s\n", escrow_state_name(r->escrow),
	        r->escrow_key[0] ? ", controller key sha256 " : "",
	        r->escrow_key);
	return 0;
}

static int
call(const char *run, const struct key_admin_req *rq, struct key_admin_rep *rp,
     int timeout)
{
	enum msg_type rt;
	char          err[REASON_LEN];

	if (req_call(run, "keybroker-admin", MSG_KEY_ADMIN_REQ, rq, &rt, rp,
	             timeout, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmctl: keybroker-admin: %s\n", err);
		return -1;
	}
	return 0;
}

static int
print(const struct key_admin_rep *rp, bool json)
{
	if (json) {
		char *s = msg_encode(MSG_KEY_ADMIN_REP, rp);
		if (s == NULL) {
			return 1;
		}
		printf("%s\n", s);
		free(s);
	} else {
		vctl_keys_print(rp, stdout);
	}
	return rp->status == KEY_OK ? 0 : 1;
}

int
vctl_keys(const char *run, int timeout, int argc, char **argv)
{
	struct key_admin_req rq;
	struct key_admin_rep rp;
	bool                 json = false;
	const char          *file = NULL;
	char                *txt = NULL, err[REASON_LEN];
	size_t               len;
	uint32_t             named;

	memset(&rq, 0, sizeof(rq));
	if (argc < 1) {
		fprintf(stderr, "vtpmctl: keys status [--json] | keys announce "
		                "FILE [--json]\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (file == NULL && argv[i][0] != '-') {
			file = argv[i];
		} else {
			fprintf(stderr, "vtpmctl: keys: unexpected %s\n",
			        argv[i]);
			return 2;
		}
	}
	if (strcmp(argv[0], "status") == 0 && file == NULL) {
		rq.op = KOP_STATUS;
	} else if (strcmp(argv[0], "announce") == 0 && file != NULL) {
		rq.op = KOP_ANNOUNCE;
		if (read_file(file, 64 * 1024, &txt, &len) < 0) {
			fprintf(stderr, "vtpmctl: %s: %s\n", file,
			        strerror(errno));
			return 2;
		}
		if (pcrset_parse_prediction(txt, len, &rq.values, &named, err,
		                            sizeof(err)) < 0) {
			fprintf(stderr, "vtpmctl: %s: %s\n", file, err);
			free(txt);
			return 2;
		}
		free(txt);
		pcrset_format(named, rq.pcrs, sizeof(rq.pcrs));
		if (timeout < 30000) {
			timeout = 30000; /* two seals and proofs on the TPM */
		}
	} else if (strcmp(argv[0], "recover-begin") == 0 && file == NULL) {
		rq.op = KOP_RECOVER_BEGIN;
		if (call(run, &rq, &rp, timeout < 10000 ? 10000 : timeout) <
		    0) {
			return 3;
		}
		if (rp.status != KEY_OK) {
			return print(&rp, json);
		}
		/* the transport public key, for the controller */
		fputs(rp.data, stdout);
		return 0;
	} else if (strcmp(argv[0], "recover") == 0 && file != NULL) {
		/* FILE: the controller's answer (hex), not a secret */
		rq.op = KOP_RECOVER;
		if (read_file(file, sizeof(rq.data) - 1, &txt, &len) < 0) {
			fprintf(stderr, "vtpmctl: %s: %s\n", file,
			        strerror(errno));
			return 2;
		}
		snprintf(rq.data, sizeof(rq.data), "%.*s", (int) len, txt);
		free(txt);
		rq.data[strcspn(rq.data, "\r\n ")] = '\0';
		if (timeout < 30000) {
			timeout = 30000;
		}
	} else {
		fprintf(stderr, "vtpmctl: keys status [--json] | keys announce "
		                "FILE [--json]\n"
		                "       keys recover-begin | keys recover "
		                "FILE\n");
		return 2;
	}
	if (call(run, &rq, &rp, timeout) < 0) {
		return 3;
	}
	return print(&rp, json);
}
