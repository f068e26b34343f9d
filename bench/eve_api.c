/*
 * eve_api.c: EVE's vTPM API (vtpm-eve-api) against our own lifecycle path,
 * on one stack (build/stack.sh --eve: hwtpm swtpm, guardian, key broker,
 * launcher) in one run:
 *   (a) GET /launch -> 200 for an existing encrypted VM, p50 over N
 *       launch/terminate cycles (EVE's client: a fresh connection each)
 *   (c) our own path for the same VM: the adapter stopped, DomainStatus
 *       BOOTING published here -> VtpmStatus READY, p50
 *   (a) and (c) alternate in ROUNDS rounds (the adapter restarted for
 *       each), so the shared machine's load drifts into both alike
 *   (b) 32 existing encrypted VMs launched at once -> all 200, and
 *   (d) the same 32 at once our own way, once per round each (median)
 *   (e) EVE's serialised algorithm (bench/launch.c, BENCH_LAUNCH_ONLY=eve:
 *       start swtpm, poll the pid file every 500 ms, CMD_INIT, shutdown,
 *       poll for exit every 1 s, start again): 32 x its measured mean,
 *       as EVE's one mutex serialises every launch (its own TPM unseal
 *       per launch left out, in its favour)
 * One JSON document on stdout; progress on stderr.
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 4  /* API and own path alternate: load drifts alike */
#define PER    10 /* cycles per round */
#define N      (ROUNDS * PER)
#define PAR    32
#define VM0    "7d000000-0000-4000-8000-000000000000"

static char root[48], sock[100], run[128];

static void
uuid_of(char *u, int i)
{
	snprintf(u, UUID_LEN, "7d000000-0000-4000-8000-%012d", i);
}

/* one request as EVE's Go client makes it; the HTTP status, or -1 */
static int
get(const char *op, const char *uuid)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char               req[256], rep[512];
	ssize_t            n, got = 0;
	int                fd, code = -1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return -1;
	}
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	n = snprintf(req, sizeof(req),
	             "GET /%s?id=%s HTTP/1.1\r\nHost: unix\r\nUser-Agent: "
	             "Go-http-client/1.1\r\nConnection: close\r\n\r\n",
	             op, uuid);
	if (write(fd, req, (size_t) n) == n) {
		while (got < (ssize_t) sizeof(rep) - 1 &&
		       (n = read(fd, rep + got,
		                 sizeof(rep) - 1 - (size_t) got)) > 0) {
			got += n;
		}
		rep[got] = '\0';
		if (sscanf(rep, "HTTP/1.%*d %d", &code) != 1) {
			code = -1;
		}
	}
	close(fd);
	return code;
}

static int
cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static double
p50_ms(uint64_t *v, int n)
{
	qsort(v, (size_t) n, sizeof(*v), cmp);
	return (double) v[n / 2] / 1000.0;
}

struct par {
	pthread_t   t;
	int         i, code;
	const char *op;
};

static void *
par_main(void *arg)
{
	struct par *p = arg;
	char        u[UUID_LEN];

	uuid_of(u, p->i);
	p->code = get(p->op, u);
	return NULL;
}

/* PAR requests at once; the wall time in us, or 0 when one was not 200 */
static uint64_t
par_all(const char *op)
{
	static struct par p[PAR];
	uint64_t          t0 = now_us(), dt;
	int               bad = 0;

	for (int i = 0; i < PAR; i++) {
		p[i] = (struct par){.i = i + 1, .op = op};
		pthread_create(&p[i].t, NULL, par_main, &p[i]);
	}
	for (int i = 0; i < PAR; i++) {
		pthread_join(p[i].t, NULL);
		bad += p[i].code != 200;
	}
	dt = now_us() - t0;
	if (bad) {
		fprintf(stderr, "eve_api: %d of %d %s requests not 200\n", bad,
		        PAR, op);
	}
	return bad ? 0 : dt;
}

/* ---- our own lifecycle path ---- */

static struct topic_pub *dpub;
static struct topic_sub *vsub;
static uint64_t          seq;

static void
publish(const char *u, int state)
{
	struct domain_status d;

	memset(&d, 0, sizeof(d));
	snprintf(d.uuid, sizeof(d.uuid), "%s", u);
	d.state = state;
	d.vtpm.enabled = true;
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "2.0");
	d.vtpm.ek = true;
	/* a new publication even when the state repeats */
	snprintf(d.reason, sizeof(d.reason), "bench #%llu",
	         (unsigned long long) ++seq);
	(void) topic_pub_set(dpub, u, &d);
}

static int
vstate(const char *u)
{
	struct vtpm_status v;

	return topic_sub_get(vsub, u, &v) == 0 ? v.state : -1;
}

/* wait until every one of the VMs first..first+n-1 (or u) has state */
static int
wait_state(const char *u, int first, int n, int state, int ms)
{
	uint64_t end = now_ms() + (uint64_t) ms;
	char     b[UUID_LEN];

	for (;;) {
		int ok = 0;

		(void) topic_sub_process(vsub);
		for (int i = 0; i < n; i++) {
			if (u == NULL) {
				uuid_of(b, first + i);
			}
			ok += vstate(u != NULL ? u : b) == state;
		}
		if (ok == n) {
			return 0;
		}
		if (now_ms() > end) {
			return -1;
		}
		sleep_ms(1);
	}
}

/* the adapter, started by us after the first round (stack.sh started
 * the first one): waits for its socket */
static pid_t
api_start(void)
{
	char  bin[256];
	pid_t p;

	snprintf(bin, sizeof(bin), "%s/bin/vtpm-eve-api",
	         getenv("OUT") ? getenv("OUT") : "out");
	unlink(sock);
	if ((p = fork()) == 0) {
		execl(bin, bin, "--root", root, "-q", (char *) NULL);
		_exit(127);
	}
	for (int i = 0; p > 0 && i < 200 && access(sock, F_OK) < 0; i++) {
		sleep_ms(10);
	}
	return access(sock, F_OK) == 0 ? p : -1;
}

static void
api_stop(pid_t p)
{
	if (p <= 0) {
		return;
	}
	kill(p, SIGTERM);
	for (int i = 0; i < 200 && kill(p, 0) == 0; i++) {
		(void) waitpid(p, NULL, WNOHANG);
		sleep_ms(10);
	}
}

static int
sh(const char *fmt, const char *arg)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), fmt, arg, arg);
	return system(cmd);
}

int
main(void)
{
	static const struct topic_sub_cb nocb = {NULL, NULL, NULL};
	static uint64_t                  a[N], c[N];
	const char *out = getenv("OUT") ? getenv("OUT") : "out";
	uint64_t    b_us[ROUNDS] = {0}, d_us[ROUNDS] = {0}, t0;
	double      eve_mean = -1;
	char        u[UUID_LEN], pidf[300], line[512];
	FILE       *f;
	int         ok = 1;
	pid_t       api = 0;

	log_init(LOG_LVL_WARN, 0);
	signal(SIGPIPE, SIG_IGN);
	snprintf(root, sizeof(root), "/tmp/vtpm-bench-eve.XXXXXX");
	if (mkdtemp(root) == NULL) {
		fatal("mkdtemp");
	}
	chmod(root, 0755); /* swtpm runs as tss below it */
	snprintf(sock, sizeof(sock), "%s/run/swtpm/vtpmd.ctrl.sock", root);
	snprintf(run, sizeof(run), "%s/run/vtpm", root);
	if (sh("build/stack.sh start --root %s --eve >%s/stack.log 2>&1",
	       root) != 0) {
		fprintf(stderr, "eve_api: stack.sh start failed (%s)\n", root);
		return 1;
	}
	snprintf(u, sizeof(u), "%s", VM0);
	snprintf(pidf, sizeof(pidf), "%s/pids/eveapi.pid", root);
	if ((f = fopen(pidf, "r")) != NULL) {
		if (fscanf(f, "%d", &api) != 1) {
			api = 0;
		}
		fclose(f);
	}
	ok &= get("launch", u) == 200 && get("terminate", u) == 200;
	ok &= par_all("launch") != 0 && par_all("terminate") != 0; /* create */
	for (int r = 0; r < ROUNDS && ok; r++) {
		fprintf(stderr, "eve_api: round %d: (a) API, (c) own path\n",
		        r);
		if (r > 0) {
			api = api_start();
			/* warm-up: the launcher reconnects to the new
			 * publisher first (NNG redial), not measured */
			ok &= api > 0 && get("launch", u) == 200 &&
			      get("terminate", u) == 200;
		}
		b_us[r] = ok ? par_all("launch") : 0;
		ok &= b_us[r] != 0 && par_all("terminate") != 0;
		for (int i = r * PER; i < (r + 1) * PER && ok; i++) {
			t0 = now_us();
			ok &= get("launch", u) == 200;
			a[i] = now_us() - t0;
			ok &= get("terminate", u) == 200;
		}
		api_stop(api);
		api = 0;
		if (topic_pub_open(&dpub, run, MSG_DOMAIN_STATUS, NULL) < 0 ||
		    topic_sub_open(&vsub, run, MSG_VTPM_STATUS, &nocb, NULL) <
		        0) {
			fatalx("pubsub in %s", run);
		}
		topic_sub_set_retry(vsub, 10);
		publish(u, DOM_HALTED); /* connected both ways first */
		ok &= wait_state(u, 0, 1, VTPM_STOPPED, 10000) == 0;
		for (int i = r * PER; i < (r + 1) * PER && ok; i++) {
			t0 = now_us();
			publish(u, DOM_BOOTING);
			ok &= wait_state(u, 0, 1, VTPM_READY, 10000) == 0;
			c[i] = now_us() - t0;
			publish(u, DOM_HALTED);
			ok &= wait_state(u, 0, 1, VTPM_STOPPED, 10000) == 0;
		}
		if (ok) {
			t0 = now_us();
			for (int i = 1; i <= PAR; i++) {
				char v[UUID_LEN];

				uuid_of(v, i);
				publish(v, DOM_BOOTING);
			}
			ok &= wait_state(NULL, 1, PAR, VTPM_READY, 30000) == 0;
			d_us[r] = now_us() - t0;
			for (int i = 1; i <= PAR; i++) {
				char v[UUID_LEN];

				uuid_of(v, i);
				publish(v, DOM_HALTED);
			}
			(void) wait_state(NULL, 1, PAR, VTPM_STOPPED, 30000);
		}
		topic_sub_close(vsub);
		topic_pub_close(dpub);
	}
	(void) sh("build/stack.sh stop --root %s >>%s/stack.log 2>&1", root);

	fprintf(stderr, "eve_api: (e) EVE's serialised algorithm\n");
	snprintf(line, sizeof(line),
	         "BENCH_LAUNCH_ONLY=eve BENCH_EVE_N=6 OUT=%s "
	         "%s/bench-bin/launch",
	         out, out);
	if ((f = popen(line, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			char *m = strstr(line, "\"mean_ms\":");
			if (m != NULL) {
				eve_mean = atof(m + 10);
			}
		}
		pclose(f);
	}
	if (!ok) {
		fprintf(stderr, "eve_api: a step failed; stack log in %s\n",
		        root);
		return 1;
	}
	{
		double ap = p50_ms(a, N), cp = p50_ms(c, N);
		double bm = p50_ms(b_us, ROUNDS), dm = p50_ms(d_us, ROUNDS);
		double em = eve_mean * PAR;

		printf("{\"bench\":\"eve_api\",\"cycles\":%d,\"parallel\":%d,\n"
		       " \"eve_api\":{\"launch_200_p50_ms\":%.2f,"
		       "\"parallel_all_200_ms\":%.1f},\n"
		       " \"own_path\":{\"booting_ready_p50_ms\":%.2f,"
		       "\"parallel_all_ready_ms\":%.1f},\n"
		       " \"eve_serialised\":{\"mean_launch_ms\":%.1f,"
		       "\"parallel_ms\":%.0f,\"extrapolated\":true},\n"
		       " \"ratios\":{\"api_p50_vs_own_p50\":%.2f,"
		       "\"api_parallel_vs_own_parallel\":%.2f,"
		       "\"eve_serialised_vs_api_parallel\":%.1f},\n"
		       " \"goals\":{\"api_p50_le_1_2x_own\":%s}}\n",
		       N, PAR, ap, bm, cp, dm, eve_mean, em, ap / cp, bm / dm,
		       em > 0 ? em / bm : -1,
		       ap <= 1.2 * cp ? "true" : "false");
	}
	(void) sh("rm -rf %s", root);
	return 0;
}
