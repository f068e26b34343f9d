/*
 * key_call.c: a test peer of the key broker.
 *   key_call --run DIR --uuid U [--print-key] [--timeout MS]
 *       one KeyRelease; prints "status S sha256 H reason R" (H is the
 *       SHA-256 of the key, never the key; --print-key adds "key K" for
 *       tests that scan for the key bytes and keep it in memory only).
 *       Exit 0 when answered, 3 when there was no answer.
 *   key_call --run DIR --bench N --concurrent C
 *       N sequential releases, then C concurrent ones: JSON on stdout.
 *   key_call --run DIR --status
 *       prints the KeyBrokerStatus item: "state S pcrs P changed C rc R
 *       reason ..." (exit 3 when the topic cannot be read).
 *   key_call --floor --root DIR --tcti T --bench N
 *       the in-process ESAPI policy-unseal floor (seal_unseal on the
 *       broker's blob): JSON. --plain: without the hygiene (unsalted
 *       session, no parameter encryption, no scrub), for reference.
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"
#include "sealer.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static char run[PATH_LEN], root[PATH_LEN], tcti[256], uuid[UUID_LEN];
static int  timeout_ms = 10000;

static int
one(bool print_key)
{
	struct key_release_req  req;
	struct key_release_rep *rep = secmem_alloc(sizeof(*rep));
	enum msg_type           rt;
	char                    err[REASON_LEN], sha[65], kh[65];
	uint8_t                 d[32];
	unsigned int            dl = 0;

	if (rep == NULL) {
		return 2;
	}
	memset(&req, 0, sizeof(req));
	snprintf(req.uuid, sizeof(req.uuid), "%s", uuid);
	if (req_call(run, "keybroker", MSG_KEY_RELEASE_REQ, &req, &rt, rep,
	             timeout_ms, err, sizeof(err)) < 0) {
		printf("noanswer %s\n", err);
		secmem_free(rep, sizeof(*rep));
		return 3;
	}
	EVP_Digest(rep->key, sizeof(rep->key), d, &dl, EVP_sha256(), NULL);
	hex_encode(d, 32, sha, sizeof(sha));
	printf("status %s sha256 %s", key_status_name(rep->status),
	       rep->status == KEY_OK ? sha : "-");
	if (print_key && rep->status == KEY_OK) {
		hex_encode(rep->key, KEY_LEN, kh, sizeof(kh));
		printf(" key %s", kh);
		explicit_bzero(kh, sizeof(kh));
	}
	printf(" reason %s\n", rep->reason[0] ? rep->reason : "-");
	secmem_free(rep, sizeof(*rep));
	return 0;
}

static void
on_status(void *arg, const char *key, const void *item)
{
	const struct keybroker_status *st = item;

	(void) key;
	*(int *) arg = 1;
	printf("state %s pcrs %s changed %s rc 0x%x reason %s\n",
	       kb_state_name(st->state), st->pcrs,
	       st->changed_pcrs[0] ? st->changed_pcrs : "-", (unsigned) st->rc,
	       st->reason[0] ? st->reason : "-");
}

static int
status(void)
{
	char err[REASON_LEN];
	int  seen = 0;

	if (topic_snapshot_fetch(run, MSG_KEYBROKER_STATUS, on_status, &seen,
	                         timeout_ms, err, sizeof(err)) < 0 ||
	    !seen) {
		printf("nostatus %s\n", seen ? "" : err);
		return 3;
	}
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static void
stats(uint64_t *v, int n, double *p50, double *p99, double *mean)
{
	double s = 0;

	qsort(v, (size_t) n, sizeof(*v), cmp_u64);
	for (int i = 0; i < n; i++) {
		s += (double) v[i];
	}
	*p50 = (double) v[n / 2] / 1000.0;
	*p99 =
	    (double) v[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] / 1000.0;
	*mean = s / n / 1000.0;
}

struct conc {
	struct req_client *c;
	pthread_barrier_t *bar;
	int                ok;
	int                idx;
};

static void *
conc_main(void *arg)
{
	struct conc           *w = arg;
	struct key_release_req req;
	struct key_release_rep rep;
	enum msg_type          rt;
	char                   err[REASON_LEN];

	memset(&req, 0, sizeof(req));
	snprintf(req.uuid, sizeof(req.uuid), "00000000-0000-0000-0000-%012d",
	         w->idx);
	pthread_barrier_wait(w->bar);
	w->ok = req_client_call(w->c, MSG_KEY_RELEASE_REQ, &req, &rt, &rep,
	                        timeout_ms, err, sizeof(err)) == 0 &&
	        rep.status == KEY_OK;
	explicit_bzero(&rep, sizeof(rep));
	return NULL;
}

static int
bench_client(int n, int nconc)
{
	struct req_client     *c;
	uint64_t              *lat = calloc((size_t) n, sizeof(*lat));
	struct key_release_req req;
	struct key_release_rep rep;
	enum msg_type          rt;
	char                   err[REASON_LEN];
	double                 p50, p99, mean;
	pthread_t             *th;
	struct conc           *w;
	pthread_barrier_t      bar;
	uint64_t               t0, wall;
	int                    okc = 0;

	if (lat == NULL || req_client_open(&c, run, "keybroker") < 0) {
		return 2;
	}
	memset(&req, 0, sizeof(req));
	snprintf(req.uuid, sizeof(req.uuid), "%s",
	         "11111111-2222-3333-4444-555555555555");
	/* warm up the connection */
	(void) req_client_call(c, MSG_KEY_RELEASE_REQ, &req, &rt, &rep,
	                       timeout_ms, err, sizeof(err));
	for (int i = 0; i < n; i++) {
		t0 = now_us();
		if (req_client_call(c, MSG_KEY_RELEASE_REQ, &req, &rt, &rep,
		                    timeout_ms, err, sizeof(err)) < 0 ||
		    rep.status != KEY_OK) {
			fprintf(stderr, "release %d failed: %s %s\n", i, err,
			        rep.reason);
			return 1;
		}
		lat[i] = now_us() - t0;
	}
	explicit_bzero(&rep, sizeof(rep));
	stats(lat, n, &p50, &p99, &mean);

	th = calloc((size_t) nconc, sizeof(*th));
	w = calloc((size_t) nconc, sizeof(*w));
	pthread_barrier_init(&bar, NULL, (unsigned) nconc + 1);
	for (int i = 0; i < nconc; i++) {
		w[i] = (struct conc){.c = c, .bar = &bar, .idx = i};
		pthread_create(&th[i], NULL, conc_main, &w[i]);
	}
	pthread_barrier_wait(&bar);
	t0 = now_us();
	for (int i = 0; i < nconc; i++) {
		pthread_join(th[i], NULL);
		okc += w[i].ok;
	}
	wall = now_us() - t0;
	printf("{\"n\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"mean_ms\": %.3f, \"concurrent\": %d, \"concurrent_ok\": %d, "
	       "\"concurrent_wall_ms\": %.3f}\n",
	       n, p50, p99, mean, nconc, okc, (double) wall / 1000.0);
	req_client_close(c);
	free(lat);
	free(th);
	free(w);
	return okc == nconc ? 0 : 1;
}

static bool plain;

static int
bench_floor(int n)
{
	struct tpm       t;
	struct seal_blob b;
	char             err[REASON_LEN], path[PATH_LEN];
	uint8_t         *m = secmem_alloc(SEAL_MASTER_LEN);
	uint64_t        *lat = calloc((size_t) n, sizeof(*lat)), t0;
	double           p50, p99, mean;
	TSS2_RC          rc;

	if (path_join(path, sizeof(path), "%s/persist/vtpm/%s", root,
	              SEAL_FILE) < 0) {
		return 2;
	}
	if (m == NULL || lat == NULL ||
	    seal_blob_load(path, &b, err, sizeof(err)) < 0 ||
	    tpm_open(&t, tcti, err, sizeof(err)) < 0) {
		fprintf(stderr, "floor: %s\n", err);
		return 2;
	}
	t.h.srk = b.srk; /* the SRK the broker sealed under */
	(void) seal_unseal(&t, &b, m, &rc, err, sizeof(err)); /* warm up */
	for (int i = 0; i < n; i++) {
		t0 = now_us();
		if ((plain
		         ? seal_unseal_plain(&t, &b, m, &rc, err, sizeof(err))
		         : seal_unseal(&t, &b, m, &rc, err, sizeof(err))) < 0) {
			fprintf(stderr, "floor: %s\n", err);
			return 1;
		}
		lat[i] = now_us() - t0;
	}
	secmem_free(m, SEAL_MASTER_LEN);
	tpm_close(&t);
	stats(lat, n, &p50, &p99, &mean);
	printf("{\"n\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"mean_ms\": %.3f}\n",
	       n, p50, p99, mean);
	free(lat);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"root", required_argument, NULL, 'R'},
	    {"tcti", required_argument, NULL, 't'},
	    {"uuid", required_argument, NULL, 'u'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"print-key", no_argument, NULL, 'k'},
	    {"bench", required_argument, NULL, 'b'},
	    {"concurrent", required_argument, NULL, 'c'},
	    {"floor", no_argument, NULL, 'f'},
	    {"status", no_argument, NULL, 's'},
	    {"plain", no_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0}};
	bool print_key = false, floor_mode = false, status_mode = false;
	int  c, nbench = 0, nconc = 64;

	log_init(LOG_LVL_WARN, 0);
	setenv("TSS2_LOG", "all+none", 0);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			snprintf(run, sizeof(run), "%s", optarg);
			break;
		case 'R':
			snprintf(root, sizeof(root), "%s", optarg);
			break;
		case 't':
			snprintf(tcti, sizeof(tcti), "%s", optarg);
			break;
		case 'u':
			snprintf(uuid, sizeof(uuid), "%s", optarg);
			break;
		case 'T':
			timeout_ms = atoi(optarg);
			break;
		case 'k':
			print_key = true;
			break;
		case 'b':
			nbench = atoi(optarg);
			break;
		case 'c':
			nconc = atoi(optarg);
			break;
		case 'f':
			floor_mode = true;
			break;
		case 's':
			status_mode = true;
			break;
		case 'P':
			plain = true;
			break;
		default:
			fprintf(stderr, "usage: see key_call.c\n");
			return 2;
		}
	}
	if (status_mode) {
		return status();
	}
	if (floor_mode) {
		return bench_floor(nbench > 0 ? nbench : 100);
	}
	if (nbench > 0) {
		return bench_client(nbench, nconc);
	}
	return one(print_key);
}
