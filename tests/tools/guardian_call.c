/*
 * guardian_call: send one GuardianRequest to vtpm-guardian (tests, bench).
 *   guardian_call --run DIR OP UUID [--ephemeral] [--encrypted] [--timeout MS]
 *     OP: prepare|restore|reset|release|purge|query; prints the reply as
 *     one JSON line; exit 0 when ok, 1 when not ok, 2 on no/Error reply.
 *   guardian_call --run DIR health UUID
 *     prints the VtpmStateHealth item of UUID (snapshot); 1 when absent.
 *   guardian_call --run DIR raw JSON
 *     sends JSON as is, prints the raw reply (bad-request tests).
 *   guardian_call --run DIR bench UUID N
 *     N times: release (not timed), prepare (timed), on one connection;
 *     prints {"n", "mean_ms", "p50_ms", "p99_ms", "max_ms"}.
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <getopt.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: guardian_call --run DIR "
	           "prepare|restore|reset|release|purge|query|health UUID "
	           "[--ephemeral] [--encrypted] [--timeout MS]\n"
	           "       guardian_call --run DIR raw JSON\n"
	           "       guardian_call --run DIR bench UUID N\n");
}

struct health_find {
	const char              *uuid;
	struct vtpm_state_health h;
	bool                     found;
};

static void
health_cb(void *arg, const char *key, const void *item)
{
	struct health_find *f = arg;

	if (strcasecmp(key, f->uuid) == 0) {
		memcpy(&f->h, item, sizeof(f->h));
		f->found = true;
	}
}

static int
raw(const char *run, const char *json, int timeout)
{
	nng_socket s;
	char       url[PATH_LEN + 16];
	char      *buf = NULL;
	size_t     len = 0;
	int        rv;

	endpoint_url(url, sizeof(url), run, "guardian.req");
	if ((rv = nng_req0_open(&s)) != 0) {
		return 2;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0 ||
	    (rv = nng_send(s, (void *) json, strlen(json), 0)) != 0 ||
	    (rv = nng_recv(s, &buf, &len, NNG_FLAG_ALLOC)) != 0) {
		fprintf(stderr, "guardian_call raw: %s\n", nng_strerror(rv));
		nng_close(s);
		return 2;
	}
	printf("%.*s\n", (int) len, buf);
	nng_free(buf, len);
	nng_close(s);
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static int
bench(const char *run, struct guardian_req *q, int n, int timeout)
{
	struct req_client  *cl;
	struct guardian_rep r;
	enum msg_type       rt;
	char                err[REASON_LEN];
	uint64_t           *us, sum = 0;

	if (n < 1 || (us = calloc((size_t) n, sizeof(*us))) == NULL) {
		return 2;
	}
	if (req_client_open(&cl, run, "guardian") < 0) {
		free(us);
		return 2;
	}
	for (int i = 0; i < n; i++) {
		uint64_t t0;
		q->op = GOP_RELEASE;
		req_client_call(cl, MSG_GUARDIAN_REQ, q, &rt, &r, timeout, err,
		                sizeof(err));
		q->op = GOP_PREPARE;
		t0 = now_us();
		if (req_client_call(cl, MSG_GUARDIAN_REQ, q, &rt, &r, timeout,
		                    err, sizeof(err)) < 0 ||
		    !r.ok) {
			fprintf(stderr, "guardian_call bench: %s %s\n", err,
			        r.reason);
			req_client_close(cl);
			free(us);
			return 1;
		}
		us[i] = now_us() - t0;
		sum += us[i];
	}
	req_client_close(cl);
	qsort(us, (size_t) n, sizeof(*us), cmp_u64);
	printf("{\"n\": %d, \"mean_ms\": %.3f, \"p50_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
	       n, sum / 1000.0 / n, us[n / 2] / 1000.0,
	       us[n * 99 / 100] / 1000.0, us[n - 1] / 1000.0);
	free(us);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"ephemeral", no_argument, NULL, 'e'},
	    {"encrypted", no_argument, NULL, 'k'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char         *run = NULL, *op, *uuid;
	struct guardian_req q;
	struct guardian_rep r;
	enum msg_type       rt;
	char                err[REASON_LEN], *js;
	int                 c, timeout = 5000;

	memset(&q, 0, sizeof(q));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run = optarg;
			break;
		case 'e':
			q.mode = VTPM_MODE_EPHEMERAL;
			break;
		case 'k':
			q.encrypted = true;
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (run == NULL || argc - optind < 2) {
		usage(stderr);
		return 2;
	}
	op = argv[optind];
	uuid = argv[optind + 1];
	log_procinit("guardian_call");
	log_init(LOG_LVL_WARN, 0);
	if (strcmp(op, "raw") == 0) {
		return raw(run, uuid, timeout);
	}
	if (strcmp(op, "health") == 0) {
		struct health_find f = {.uuid = uuid};
		if (topic_snapshot_fetch(run, MSG_VTPM_STATE_HEALTH, health_cb,
		                         &f, timeout, err, sizeof(err)) < 0) {
			fprintf(stderr, "guardian_call: snapshot: %s\n", err);
			return 2;
		}
		if (!f.found) {
			return 1;
		}
		js = msg_encode(MSG_VTPM_STATE_HEALTH, &f.h);
		printf("%s\n", js ? js : "{}");
		free(js);
		return 0;
	}
	snprintf(q.uuid, sizeof(q.uuid), "%s", uuid);
	if (strcmp(op, "bench") == 0) {
		return bench(run, &q,
		             argc - optind > 2 ? atoi(argv[optind + 2]) : 100,
		             timeout);
	}
	for (q.op = 0;
	     guardian_op_name(q.op) != NULL &&
	     strcmp(guardian_op_name(q.op), op) != 0 && q.op <= GOP_QUERY;
	     q.op++) {
	}
	if (q.op > GOP_QUERY) {
		usage(stderr);
		return 2;
	}
	if (req_call(run, "guardian", MSG_GUARDIAN_REQ, &q, &rt, &r, timeout,
	             err, sizeof(err)) < 0) {
		fprintf(stderr, "guardian_call %s %s: %s\n", op, uuid, err);
		return 2;
	}
	js = msg_encode(MSG_GUARDIAN_REP, &r);
	printf("%s\n", js ? js : "{}");
	free(js);
	return r.ok ? 0 : 1;
}
