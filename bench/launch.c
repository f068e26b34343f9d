/*
 * launch.c: how fast a VM gets its vTPM.
 *   (a) BOOTING published -> READY seen, p50/p99 over 200 launches, with
 *       the sandboxed launcher (the default) and with --no-sandbox
 *   (b) 256-VM boot storm: 256 BOOTING at once -> all READY (first boot,
 *       new states), then the reboot storm: the launcher restarted with
 *       all 256 BOOTING and every state present -> all READY; both
 *       launchers; launcher and per-swtpm PSS at 256 VMs
 *   (c) the same for an EVE-style baseline: start swtpm, poll the pid file
 *       every 500 ms, CMD_INIT, CMD_SHUTDOWN, poll for its exit every 1 s,
 *       start again, poll the pid file every 500 ms; one VM at a time (the
 *       storm is extrapolated from the measured launches: 64 x mean)
 *   (d) raw floor: swtpm --daemon + CMD_INIT alone
 *   (e) storm floor: 256 swtpm started at once, each answering CMD_INIT
 * plus the launcher's RSS and PSS. One JSON document on stdout.
 * BENCH_LAUNCH_ONLY=eve runs (c) alone (BENCH_EVE_N launches).
 * The launchers run --no-guardian --no-keybroker, so they do the work of
 * the floors plus their own (a uid and namespaces per swtpm sandboxed,
 * --runas tss without the sandbox).
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAUNCHES 200
#define STORM    256

extern char **environ;

static char              tmp[128], run[512];
static struct topic_pub *dpub;
static struct topic_sub *vsub;

/* launchers we started: stopped (they stop their swtpm) if we are killed */
static volatile pid_t children[2];

/* the raw swtpm of the floor or baseline being measured, by its pid file */
static char cur_pidf[320];

static void
on_signal(int sig)
{
	char buf[16] = {0};
	int  fd;

	for (int i = 0; i < 2; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGTERM);
		}
	}
	/* open/read/kill are async-signal-safe */
	if (cur_pidf[0] != '\0' && (fd = open(cur_pidf, O_RDONLY)) >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0 && atoi(buf) > 1) {
			kill(atoi(buf), SIGTERM);
		}
		close(fd);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
uuid_of(char *u, int i)
{
	snprintf(u, UUID_LEN, "00000000-0000-4000-8000-%012d", i);
}

static void
publish(int i, int state)
{
	struct domain_status d;

	memset(&d, 0, sizeof(d));
	uuid_of(d.uuid, i);
	snprintf(d.name, sizeof(d.name), "bench%d", i);
	d.state = state;
	d.vtpm.enabled = true;
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "2.0");
	if (topic_pub_set(dpub, d.uuid, &d) < 0) {
		fatalx("publish %s", d.uuid);
	}
}

static int
vstate(int i)
{
	struct vtpm_status v;
	char               u[UUID_LEN];

	uuid_of(u, i);
	return topic_sub_get(vsub, u, &v) == 0 ? v.state : -1;
}

/* wait until VMs first..first+n-1 are all in state; 0 or -1 on timeout */
static int
wait_all(int first, int n, int state, int timeout_ms)
{
	uint64_t      end = now_ms() + (uint64_t) timeout_ms;
	struct pollfd p = {topic_sub_fd(vsub), POLLIN, 0};
	int           i;

	for (;;) {
		int t = topic_sub_process(vsub);
		for (i = first; i < first + n && vstate(i) == state; i++) {
		}
		if (i == first + n) {
			return 0;
		}
		if (now_ms() > end) {
			return -1;
		}
		(void) poll(&p, 1, t < 50 ? t : 50);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static double
pct(uint64_t *v, int n, double p)
{
	qsort(v, (size_t) n, sizeof(*v), cmp_u64);
	return (double) v[(int) ((n - 1) * p)] / 1000.0;
}

static double
mean(const uint64_t *v, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++) {
		s += (double) v[i];
	}
	return s / n / 1000.0;
}

static pid_t
spawn(char *const argv[])
{
	pid_t                      pid;
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		fatal("spawn %s", argv[0]);
	}
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static long
rss_kb(pid_t pid, const char *field)
{
	char  p[64], line[256];
	long  v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int) pid);
	if ((f = fopen(p, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, strlen(field)) == 0) {
			v = atol(line + strlen(field) + 1);
		}
	}
	fclose(f);
	return v;
}

/* Proportional set size (kB) of pid: shared pages split between their
 * users, so 256 swtpm sharing libtpms count it once in total. */
static long
pss_kb(pid_t pid)
{
	char  p[64], line[256];
	long  v = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", (int) pid);
	if ((f = fopen(p, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Pss:", 4) == 0) {
			v = atol(line + 4);
		}
	}
	fclose(f);
	return v;
}

/* Mean PSS of the swtpm processes named by <run>/swtpm/<uuid>.pid of
 * VMs first..first+n-1. */
static long
swtpm_pss_kb(int first, int n)
{
	long sum = 0;
	int  got = 0;

	for (int i = first; i < first + n; i++) {
		char   u[UUID_LEN], path[700], *b;
		size_t l;
		long   v;

		uuid_of(u, i);
		snprintf(path, sizeof(path), "%s/swtpm/%s.pid", run, u);
		if (read_file(path, 64, &b, &l) < 0) {
			continue;
		}
		v = pss_kb((pid_t) atoi(b));
		free(b);
		if (v >= 0) {
			sum += v;
			got++;
		}
	}
	return got ? sum / got : -1;
}

/* ---- raw swtpm, for the floors and the baseline ---- */

struct raw {
	char dir[300], ctrl[300], pidf[300], a_dir[320], a_ctrl[320],
	    a_pid[320];
};

static void
raw_paths(struct raw *r, const char *tag, int i)
{
	snprintf(r->dir, sizeof(r->dir), "%s/raw-%s-%d", tmp, tag, i);
	snprintf(r->ctrl, sizeof(r->ctrl), "%s/%s-%d.ctrl", tmp, tag, i);
	snprintf(r->pidf, sizeof(r->pidf), "%s/%s-%d.pid", tmp, tag, i);
	snprintf(r->a_dir, sizeof(r->a_dir), "dir=%s", r->dir);
	snprintf(r->a_ctrl, sizeof(r->a_ctrl), "type=unixio,path=%s", r->ctrl);
	snprintf(r->a_pid, sizeof(r->a_pid), "file=%s", r->pidf);
	mkdir_p(r->dir, 0700);
	unlink(r->pidf);
}

/* swtpm --daemon: returns once the daemonizing parent has exited */
static void
raw_start(struct raw *r)
{
	char *argv[] = {"/usr/bin/swtpm", "socket",   "--tpm2",  "--tpmstate",
	                r->a_dir,         "--ctrl",   r->a_ctrl, "--pid",
	                r->a_pid,         "--daemon", NULL};
	pid_t pid = spawn(argv);
	memcpy(cur_pidf, r->pidf, sizeof(r->pidf));
	waitpid(pid, NULL, 0);
}

static int
raw_init(const struct raw *r)
{
	uint32_t res;
	uint64_t end = now_ms() + 10000;
	int      fd, rc;

	/* poll every 1 ms: at least as eager as the launcher (1-4 ms) */
	while ((fd = swtpm_ctrl_connect(r->ctrl, 10000)) < 0) {
		if (now_ms() > end) {
			return -1;
		}
		sleep_ms(1);
	}
	rc = swtpm_ctrl_init(fd, 0, &res);
	close(fd);
	return rc < 0 || res != 0 ? -1 : 0;
}

static pid_t
raw_pid(const struct raw *r)
{
	char  *b;
	size_t l;
	pid_t  p = 0;

	if (read_file(r->pidf, 64, &b, &l) == 0) {
		p = (pid_t) atoi(b);
		free(b);
	}
	return p;
}

static void
raw_stop(const struct raw *r)
{
	uint32_t res;
	pid_t    p = raw_pid(r);
	int      fd = swtpm_ctrl_connect(r->ctrl, 2000);

	if (fd >= 0) {
		(void) swtpm_ctrl_shutdown(fd, &res);
		close(fd);
	}
	/* we are the subreaper: the daemonized swtpm is our child */
	for (int i = 0; p > 0 && i < 2000 && waitpid(p, NULL, WNOHANG) == 0;
	     i++) {
		sleep_ms(1);
	}
}

/* EVE-style: the serialized start-stop-restart with sleep polling */
static int
eve_launch(int i)
{
	struct raw r;
	pid_t      p;

	raw_paths(&r, "eve", i);
	raw_start(&r);
	do {
		sleep_ms(500);
	} while (access(r.pidf, F_OK) < 0);
	if (raw_init(&r) < 0) {
		return -1;
	}
	p = raw_pid(&r);
	{
		uint32_t res;
		int      fd = swtpm_ctrl_connect(r.ctrl, 2000);
		if (fd >= 0) {
			(void) swtpm_ctrl_shutdown(fd, &res);
			close(fd);
		}
	}
	do {
		sleep_ms(1000);
	} while (p > 0 && waitpid(p, NULL, WNOHANG) == 0);
	unlink(r.pidf);
	raw_start(&r);
	do {
		sleep_ms(500);
	} while (access(r.pidf, F_OK) < 0);
	raw_stop(&r);
	return 0;
}

/* (f) the real path: guardian + key broker on a simulated hardware TPM,
 * sandboxed swtpm with an encrypted state; PSS of the three daemons at
 * the end. -1 when a part is missing. */
#define FULL 50
static int
full_path(const char *out, bool sandboxed, uint64_t *lat, long rss_sum[3])
{
	static const struct topic_sub_cb nocb = {NULL, NULL, NULL};
	struct peer_policy               pol;
	char  root[300], hw[320], cmd[900], g[256], k[256], l[256], tcti[64];
	char  sock[600];
	pid_t gp, kp, lp;
	int   port = 20000 + (int) (now_us() % 30000), rc = -1;

	snprintf(g, sizeof(g), "%s/bin/vtpm-guardian", out);
	snprintf(k, sizeof(k), "%s/bin/vtpm-keybroker", out);
	snprintf(l, sizeof(l), "%s/bin/vtpm-launcher", out);
	if (access(g, X_OK) < 0 || access(k, X_OK) < 0 ||
	    access("build/hwtpm.sh", X_OK) < 0) {
		return -1;
	}
	snprintf(root, sizeof(root), "%s/full%s", tmp, sandboxed ? "" : "-ns");
	snprintf(hw, sizeof(hw), "%s/hwtpm%s", tmp, sandboxed ? "" : "-ns");
	snprintf(run, sizeof(run), "%s/run/vtpm", root);
	mkdir_p(run, 0700);
	/* swtpm runs as tss here: it must traverse down to <root>/run */
	chmod(tmp, 0711);
	chmod(root, 0711);
	snprintf(cmd, sizeof(cmd),
	         "build/hwtpm.sh start --dir %s --port %d >/dev/null 2>&1", hw,
	         port);
	if (system(cmd) != 0) {
		return -1;
	}
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	{
		char *ga[] = {g, "--root", root, "-q", NULL};
		char *ka[] = {k, "--root", root, "--tcti", tcti, "-q", NULL};
		gp = spawn(ga);
		snprintf(sock, sizeof(sock), "%s/guardian.req", run);
		for (int i = 0; i < 200 && access(sock, F_OK) < 0; i++) {
			sleep_ms(50);
		}
		kp = spawn(ka);
		snprintf(sock, sizeof(sock), "%s/keybroker.req", run);
		for (int i = 0; i < 600 && access(sock, F_OK) < 0; i++) {
			sleep_ms(50);
		}
	}
	{
		char *la[] = {l,    "--root", root, "--stop-on-exit",
		              "-q", NULL,     NULL};
		if (!sandboxed) {
			la[5] = "--no-sandbox";
		}
		lp = spawn(la);
		children[1] = lp;
	}
	peer_policy_init(&pol);
	if (topic_pub_open(&dpub, run, MSG_DOMAIN_STATUS, &pol) < 0 ||
	    topic_sub_open(&vsub, run, MSG_VTPM_STATUS, &nocb, NULL) < 0) {
		goto out;
	}
	topic_sub_set_retry(vsub, 10);
	publish(200000, DOM_BOOTING); /* warm-up: seals the master key */
	if (wait_all(200000, 1, VTPM_READY, 30000) < 0) {
		goto out;
	}
	for (int i = 0; i < FULL; i++) {
		uint64_t t0 = now_us();
		publish(3000 + i, DOM_BOOTING);
		if (wait_all(3000 + i, 1, VTPM_READY, 20000) < 0) {
			goto out;
		}
		lat[i] = now_us() - t0;
		publish(3000 + i, DOM_HALTED);
		wait_all(3000 + i, 1, VTPM_STOPPED, 10000);
	}
	rss_sum[0] = pss_kb(lp);
	rss_sum[1] = pss_kb(gp);
	rss_sum[2] = pss_kb(kp);
	rc = 0;
out:
	kill(lp, SIGTERM);
	waitpid(lp, NULL, 0);
	kill(kp, SIGTERM);
	kill(gp, SIGTERM);
	waitpid(kp, NULL, 0);
	waitpid(gp, NULL, 0);
	snprintf(cmd, sizeof(cmd),
	         "build/hwtpm.sh stop --dir %s >/dev/null 2>&1", hw);
	if (system(cmd) != 0) {
		fprintf(stderr, "launch: hwtpm stop failed\n");
	}
	topic_sub_close(vsub);
	topic_pub_close(dpub);
	return rc;
}

/* One launcher configuration, measured. */
struct lrun {
	bool     sandboxed;
	uint64_t lat[LAUNCHES];
	uint64_t storm_us;  /* first boot: new states */
	uint64_t reboot_us; /* launcher restarted, 256 BOOTING, states */
	long     rss_idle, rss_peak, pss_idle, pss_storm, swtpm_pss;
};

static pid_t
start_launcher(const struct lrun *r, char *lbin, const char *root)
{
	char *sb[] = {lbin,
	              "--root",
	              (char *) root,
	              "--no-guardian",
	              "--no-keybroker",
	              "--stop-on-exit",
	              "-q",
	              NULL};
	char *ns[] = {lbin,
	              "--root",
	              (char *) root,
	              "--no-guardian",
	              "--no-keybroker",
	              "--stop-on-exit",
	              "--no-sandbox",
	              "-q",
	              NULL};
	pid_t pid = spawn(r->sandboxed ? sb : ns);

	children[0] = pid;
	return pid;
}

static void
stop_launcher(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	children[0] = 0;
}

/* (a) and (b) for one launcher, on its own root */
static int
measure_launcher(struct lrun *r, char *lbin)
{
	static const struct topic_sub_cb nocb = {NULL, NULL, NULL};
	struct peer_policy               pol;
	char                             root[300];
	uint64_t                         t0;
	pid_t                            lpid;

	snprintf(root, sizeof(root), "%s/%s", tmp, r->sandboxed ? "s" : "u");
	snprintf(run, sizeof(run), "%s/run/vtpm", root);
	mkdir_p(run, 0700);
	chmod(root, 0711);
	peer_policy_init(&pol);
	if (topic_pub_open(&dpub, run, MSG_DOMAIN_STATUS, &pol) < 0 ||
	    topic_sub_open(&vsub, run, MSG_VTPM_STATUS, &nocb, NULL) < 0) {
		fatalx("pubsub in %s", run);
	}
	topic_sub_set_retry(vsub, 10);
	lpid = start_launcher(r, lbin, root);
	/* warm-up: one VM through, so both sides are connected */
	publish(100000, DOM_BOOTING);
	if (wait_all(100000, 1, VTPM_READY, 20000) < 0) {
		fatalx("launcher never became READY for the warm-up VM");
	}
	publish(100000, DOM_HALTED);
	wait_all(100000, 1, VTPM_STOPPED, 10000);
	r->rss_idle = rss_kb(lpid, "VmRSS:");
	r->pss_idle = pss_kb(lpid);

	for (int i = 0; i < LAUNCHES; i++) {
		t0 = now_us();
		publish(i, DOM_BOOTING);
		if (wait_all(i, 1, VTPM_READY, 20000) < 0) {
			fatalx("VM %d not READY", i);
		}
		r->lat[i] = now_us() - t0;
		publish(i, DOM_HALTED);
		wait_all(i, 1, VTPM_STOPPED, 10000);
	}
	fprintf(stderr, "launch: %d-VM storm, first boot\n", STORM);
	t0 = now_us();
	for (int i = 1000; i < 1000 + STORM; i++) {
		publish(i, DOM_BOOTING);
	}
	if (wait_all(1000, STORM, VTPM_READY, 120000) < 0) {
		fatalx("storm: not all READY");
	}
	r->storm_us = now_us() - t0;
	for (int i = 1000; i < 1000 + STORM; i++) {
		publish(i, DOM_HALTED);
	}
	wait_all(1000, STORM, VTPM_STOPPED, 120000);
	stop_launcher(lpid);

	/* the reboot storm: every state present, every VM booting, the
	 * launcher starting */
	fprintf(stderr, "launch: %d-VM reboot storm\n", STORM);
	for (int i = 1000; i < 1000 + STORM; i++) {
		publish(i, DOM_BOOTING);
	}
	t0 = now_us();
	lpid = start_launcher(r, lbin, root);
	if (wait_all(1000, STORM, VTPM_READY, 120000) < 0) {
		fatalx("reboot storm: not all READY");
	}
	r->reboot_us = now_us() - t0;
	r->pss_storm = pss_kb(lpid);
	r->rss_peak = rss_kb(lpid, "VmHWM:");
	r->swtpm_pss = swtpm_pss_kb(1000, STORM);
	for (int i = 1000; i < 1000 + STORM; i++) {
		publish(i, DOM_HALTED);
	}
	wait_all(1000, STORM, VTPM_STOPPED, 120000);
	stop_launcher(lpid);
	topic_sub_close(vsub);
	topic_pub_close(dpub);
	return 0;
}

int
main(void)
{
	static uint64_t raw[LAUNCHES], eve[64], full[FULL], full_ns[FULL];
	long full_rss[3] = {-1, -1, -1}, full_ns_pss[3] = {-1, -1, -1};
	static struct lrun lr[2];
	const char        *out = getenv("OUT") ? getenv("OUT") : "out";
	char               lbin[256];
	int eve_n = getenv("BENCH_EVE_N") ? atoi(getenv("BENCH_EVE_N")) : 8;
	uint64_t t0, floor_us;

	log_init(LOG_LVL_WARN, 0);
	log_procinit("bench-launch");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* daemonized swtpm processes become our children, so their exit is
	 * seen at once (waitpid), not whenever init reaps them */
	(void) prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (eve_n < 1 || eve_n > 64) {
		eve_n = 8;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/vtpm-bench-launch.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		fatal("mkdtemp");
	}
	if (getenv("BENCH_LAUNCH_ONLY") != NULL &&
	    strcmp(getenv("BENCH_LAUNCH_ONLY"), "eve") == 0) {
		/* only (c), for other benches' baselines (bench/eve_api.c) */
		for (int i = 0; i < eve_n; i++) {
			t0 = now_us();
			if (eve_launch(i) < 0) {
				fatalx("EVE-style launch %d failed", i);
			}
			eve[i] = now_us() - t0;
		}
		remove_tree(tmp);
		printf("{\"bench\":\"launch\",\"only\":\"eve\","
		       "\"eve_style_baseline\":{\"launches\":%d,"
		       "\"p50_ms\":%.1f,\"mean_ms\":%.1f}}\n",
		       eve_n, pct(eve, eve_n, 0.5), mean(eve, eve_n));
		return 0;
	}
	snprintf(lbin, sizeof(lbin), "%s/bin/vtpm-launcher", out);
	/* without the sandbox swtpm runs as tss: it must traverse tmp */
	chmod(tmp, 0711);
	for (int m = 0; m < 2; m++) {
		struct lrun *r = &lr[m];

		r->sandboxed = m == 0;
		fprintf(stderr, "launch: %s launcher\n",
		        r->sandboxed ? "sandboxed" : "--no-sandbox");
		if (measure_launcher(r, lbin) < 0) {
			return 1;
		}
	}
	chmod(tmp, 0700);
	snprintf(run, sizeof(run), "%s/run/vtpm", tmp);
	mkdir_p(run, 0700);

	/* (d) */
	fprintf(stderr, "launch: raw floor\n");
	for (int i = 0; i < LAUNCHES; i++) {
		struct raw r;
		raw_paths(&r, "raw", i);
		t0 = now_us();
		raw_start(&r);
		if (raw_init(&r) < 0) {
			fatalx("raw floor: CMD_INIT %d", i);
		}
		raw[i] = now_us() - t0;
		raw_stop(&r);
	}
	/* (e) */
	fprintf(stderr, "launch: storm floor\n");
	{
		static struct raw r[STORM];
		for (int i = 0; i < STORM; i++) {
			raw_paths(&r[i], "storm", i);
		}
		t0 = now_us();
		for (int i = 0; i < STORM; i++) {
			char *argv[] = {
			    "/usr/bin/swtpm", "socket",   "--tpm2",
			    "--tpmstate",     r[i].a_dir, "--ctrl",
			    r[i].a_ctrl,      "--pid",    r[i].a_pid,
			    "--daemon",       NULL};
			(void) spawn(argv); /* reaped below */
		}
		for (int i = 0; i < STORM; i++) {
			if (raw_init(&r[i]) < 0) {
				fatalx("storm floor: CMD_INIT %d", i);
			}
		}
		floor_us = now_us() - t0;
		while (waitpid(-1, NULL, WNOHANG) > 0) {
		}
		for (int i = 0; i < STORM; i++) {
			raw_stop(&r[i]);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0) {
		}
	}
	/* (c) */
	fprintf(stderr, "launch: EVE-style baseline, %d launches (~2 s each)\n",
	        eve_n);
	for (int i = 0; i < eve_n; i++) {
		t0 = now_us();
		if (eve_launch(i) < 0) {
			fatalx("EVE-style launch %d failed", i);
		}
		eve[i] = now_us() - t0;
	}

	fprintf(stderr,
	        "launch: full path (guardian + key broker), %d launches\n",
	        FULL);
	int full_ok = full_path(out, true, full, full_rss) == 0;
	fprintf(stderr, "launch: the same, --no-sandbox\n");
	int full_ns_ok = full_path(out, false, full_ns, full_ns_pss) == 0;
	remove_tree(tmp);

	double s50 = pct(lr[0].lat, LAUNCHES, 0.5);
	double u50 = pct(lr[1].lat, LAUNCHES, 0.5);
	double r50 = pct(raw, LAUNCHES, 0.5), r99 = pct(raw, LAUNCHES, 0.99);
	double emean = mean(eve, eve_n);
	double e50 = pct(eve, eve_n, 0.5), e99 = pct(eve, eve_n, 0.99);
	double fl = floor_us / 1000.0;
	double sreb = lr[0].reboot_us / 1000.0, ureb = lr[1].reboot_us / 1000.0;
	double f50 = full_ok ? pct(full, FULL, 0.5) : -1;

	printf("{\"bench\":\"launch\",\"launches\":%d,\"storm_vms\":%d,\n",
	       LAUNCHES, STORM);
	for (int m = 0; m < 2; m++) {
		struct lrun *r = &lr[m];
		printf(
		    " \"%s\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
		    "\"mean_ms\":%.2f,\"storm_first_boot_ms\":%.1f,"
		    "\"reboot_storm_ms\":%.1f,\"launcher_pss_kb\":{"
		    "\"idle\":%ld,\"at_%d_vms\":%ld},\"launcher_rss_kb\":{"
		    "\"idle\":%ld,\"peak\":%ld},\"swtpm_pss_kb_mean\":%ld},\n",
		    m == 0 ? "launcher_sandboxed" : "launcher_no_sandbox",
		    pct(r->lat, LAUNCHES, 0.5), pct(r->lat, LAUNCHES, 0.99),
		    mean(r->lat, LAUNCHES), r->storm_us / 1000.0,
		    r->reboot_us / 1000.0, r->pss_idle, STORM, r->pss_storm,
		    r->rss_idle, r->rss_peak, r->swtpm_pss);
	}
	printf(" \"eve_style_baseline\":{\"launches\":%d,\"p50_ms\":%.1f,"
	       "\"p99_ms\":%.1f,\"mean_ms\":%.1f,\"storm_all_ready_ms\":%.0f,"
	       "\"storm_extrapolated\":true,\"storm_note\":\"serialized: %d x "
	       "measured mean launch\"},\n",
	       eve_n, e50, e99, emean, emean * STORM, STORM);
	printf(" \"raw_floor\":{\"what\":\"swtpm --daemon + CMD_INIT\","
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f},\n",
	       r50, r99);
	printf(" \"storm_floor\":{\"what\":\"%d swtpm --daemon at once, each "
	       "CMD_INIT\",\"all_ready_ms\":%.1f},\n",
	       STORM, fl);
	if (full_ok) {
		printf(
		    " \"full_path\":{\"what\":\"guardian + key broker (hwtpm "
		    "swtpm), encrypted state, sandboxed "
		    "swtpm\",\"launches\":%d,"
		    "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"pss_kb\":{"
		    "\"launcher\":%ld,\"guardian\":%ld,\"keybroker\":%ld}},\n",
		    FULL, f50, pct(full, FULL, 0.99), full_rss[0], full_rss[1],
		    full_rss[2]);
	} else {
		printf(" \"full_path\":null,\n");
	}
	if (full_ns_ok) {
		printf(" \"full_path_no_sandbox\":{\"launches\":%d,\"p50_ms\":%"
		       ".2f,"
		       "\"p99_ms\":%.2f,\"pss_kb\":{\"launcher\":%ld,"
		       "\"guardian\":%ld,\"keybroker\":%ld}},\n",
		       FULL, pct(full_ns, FULL, 0.5), pct(full_ns, FULL, 0.99),
		       full_ns_pss[0], full_ns_pss[1], full_ns_pss[2]);
	} else {
		printf(" \"full_path_no_sandbox\":null,\n");
	}
	printf(" \"ratios\":{\"sandboxed_p50_vs_no_sandbox_p50\":%.2f,"
	       "\"sandboxed_p50_vs_raw_floor\":%.2f,"
	       "\"sandboxed_reboot_storm_vs_storm_floor\":%.2f,"
	       "\"no_sandbox_reboot_storm_vs_storm_floor\":%.2f,"
	       "\"eve_p50_vs_sandboxed_p50\":%.0f,"
	       "\"encrypted_sandboxed_p50_vs_no_sandbox_p50\":%.2f},\n",
	       s50 / u50, s50 / r50, sreb / fl, ureb / fl, e50 / s50,
	       full_ok && full_ns_ok ? f50 / pct(full_ns, FULL, 0.5) : -1.0);
	printf(" \"goals\":{\"sandboxed_p50_le_1_5x_unsandboxed\":%s,"
	       "\"encrypted_p50_le_25ms\":%s,"
	       "\"reboot_storm_le_1_5x_floor\":%s,"
	       "\"launcher_pss_le_8MB_at_%d\":%s}}\n",
	       s50 <= 1.5 * u50 ? "true" : "false",
	       full_ok && f50 <= 25 ? "true" : "false",
	       sreb <= 1.5 * fl ? "true" : "false", STORM,
	       lr[0].pss_storm <= 8192 ? "true" : "false");
	return 0;
}
