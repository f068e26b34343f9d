/*
 * pubsub_bench: topic update throughput and latency between two processes,
 * against a raw NNG pub/sub floor measured in the same run, and the time
 * to snapshot 1,000 items. Writes JSON to stdout (bench/run.sh keeps it in
 * out/bench/pubsub.json).
 *
 * Both cases send the same number of updates of about the same size in
 * batches; the subscriber acknowledges each batch through a pipe, so
 * neither side drops messages and the two numbers are comparable.
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define UPDATES     20000
#define BATCH       500
#define KEYS        100
#define LAT_SAMPLES 2000

static char run[128];

struct child_ctx {
	int      ack_fd;
	long     got;
	uint64_t lat[LAT_SAMPLES];
	long     nlat;
	bool     measure_latency;
	bool     live;
};

static void
record(struct child_ctx *c, uint64_t sent_us)
{
	c->got++;
	if (c->measure_latency && c->nlat < LAT_SAMPLES) {
		c->lat[c->nlat++] = now_us() - sent_us;
	}
	if (c->got % BATCH == 0 || c->measure_latency) {
		char b = 1;
		(void) !write(c->ack_fd, &b, 1);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

static void
report_latency(struct child_ctx *c, int fd)
{
	uint64_t r[2] = {0, 0};

	if (c->nlat > 0) {
		qsort(c->lat, (size_t) c->nlat, sizeof(uint64_t), cmp_u64);
		r[0] = c->lat[c->nlat / 2];
		r[1] = c->lat[c->nlat * 99 / 100];
	}
	(void) !write(fd, r, sizeof(r));
}

/* ---- raw NNG ---- */

static void
raw_child(int ack_fd, int res_fd, long n, bool lat)
{
	nng_socket       s;
	char             url[256];
	struct child_ctx c = {.ack_fd = ack_fd, .measure_latency = lat};

	snprintf(url, sizeof(url), "ipc://%s/raw.pub", run);
	nng_sub0_open(&s);
	nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_int(s, NNG_OPT_RECVBUF, 8192);
	nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	{
		char b = 0; /* ready */
		(void) !write(ack_fd, &b, 1);
	}
	while (c.got < n) {
		nng_msg *m;
		uint64_t t;
		if (nng_recvmsg(s, &m, 0) != 0) {
			break;
		}
		memcpy(&t, nng_msg_body(m), sizeof(t));
		nng_msg_free(m);
		if (t == 0) {
			continue; /* warm-up probe */
		}
		record(&c, t);
	}
	report_latency(&c, res_fd);
	nng_close(s);
}

/* ---- topic ---- */

static void
topic_on_set(void *arg, const char *key, const void *item)
{
	const struct vtpm_state_health *v = item;
	struct child_ctx               *c = arg;
	(void) key;
	if (v->generation > 0) {
		record(c, (uint64_t) v->generation);
	} else if (!c->live) {
		/* a live warm-up update: our sub pipe is attached now */
		char b = 0;
		c->live = true;
		(void) !write(c->ack_fd, &b, 1);
	}
}

static void
topic_child(int ack_fd, int res_fd, long n, bool lat)
{
	struct topic_sub *s;
	struct child_ctx  c = {.ack_fd = ack_fd, .measure_latency = lat};
	const struct topic_sub_cb cb = {topic_on_set, NULL, NULL};

	topic_sub_open(&s, run, MSG_VTPM_STATE_HEALTH, &cb, &c);
	while (!topic_sub_synced(s)) {
		topic_sub_run(s, 5);
	}
	/* no reset of c.got here: the snapshot holds only warm-up items
	 * (generation 0, not counted), and topic_sub_run() may already have
	 * counted live updates that followed the warm-up acknowledgement */
	while (c.got < n) {
		struct pollfd pfd = {topic_sub_fd(s), POLLIN, 0};
		int           t = topic_sub_process(s);
		if (c.got < n) {
			poll(&pfd, 1, t);
		}
	}
	report_latency(&c, res_fd);
	topic_sub_close(s);
}

static void
wait_acks(int fd, int n)
{
	char buf[64];
	while (n > 0) {
		ssize_t r =
		    read(fd, buf,
		         (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf));
		if (r <= 0) {
			fprintf(stderr, "bench: subscriber died\n");
			exit(1);
		}
		n -= (int) r;
	}
}

struct result {
	double   secs;
	uint64_t p50, p99;
};

/* Run one case: kind 0 raw, 1 topic; lat: one at a time, measure delay. */
static struct result
run_case(int kind, bool lat)
{
	int               ack[2], res[2];
	long              n = lat ? LAT_SAMPLES : UPDATES;
	pid_t             pid;
	struct result     r = {0};
	nng_socket        raw;
	struct topic_pub *p = NULL;
	char              url[256];

	if (pipe(ack) < 0 || pipe(res) < 0) {
		exit(1);
	}
	if (kind == 0) {
		snprintf(url, sizeof(url), "ipc://%s/raw.pub", run);
		nng_pub0_open(&raw);
		nng_socket_set_int(raw, NNG_OPT_SENDBUF, 8192);
		nng_listen(raw, url, NULL, 0);
	} else {
		topic_pub_open(&p, run, MSG_VTPM_STATE_HEALTH, NULL);
		topic_pub_set_heartbeat(p, 0);
	}
	if ((pid = fork()) == 0) {
		/* NNG is not fork-safe: the subscriber is a fresh exec of us */
		char a[16], r2[16], nn[24], k[4], l[4];
		close(ack[0]);
		close(res[0]);
		snprintf(a, sizeof(a), "%d", ack[1]);
		snprintf(r2, sizeof(r2), "%d", res[1]);
		snprintf(nn, sizeof(nn), "%ld", n);
		snprintf(k, sizeof(k), "%d", kind);
		snprintf(l, sizeof(l), "%d", lat ? 1 : 0);
		execl("/proc/self/exe", "pubsub_bench", "child", run, k, nn, l,
		      a, r2, (char *) NULL);
		_exit(127);
	}
	close(ack[1]);
	close(res[1]);
	if (kind == 1) {
		/* warm-up updates until the subscriber acknowledges one it
		 * received live (not through its snapshot) */
		struct vtpm_state_health w;
		struct pollfd            pfd = {ack[0], POLLIN, 0};
		memset(&w, 0, sizeof(w));
		snprintf(w.uuid, sizeof(w.uuid), "%s",
		         "00000000-0000-0000-0000-999999999999");
		for (int i = 0; poll(&pfd, 1, 2) == 0; i++) {
			w.last_backup = i;
			topic_pub_set(p, w.uuid, &w);
		}
		wait_acks(ack[0], 1);
	}
	if (kind == 0) {
		wait_acks(ack[0], 1); /* the subscriber is dialing */
		/* probes until the subscriber's pipe is attached */
		nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO, 10);
		for (int i = 0; i < 50; i++) {
			uint64_t z = 0;
			nng_send(raw, &z, sizeof(z), 0);
			sleep_ms(2);
		}
	}
	uint64_t t0 = now_us();
	for (long i = 0; i < n; i++) {
		uint64_t t = now_us();
		if (kind == 0) {
			/* same size as a VtpmStatus envelope */
			char body[320];
			memset(body, 'x', sizeof(body));
			memcpy(body, &t, sizeof(t));
			nng_send(raw, body, sizeof(body), 0);
		} else {
			struct vtpm_state_health v;
			memset(&v, 0, sizeof(v));
			snprintf(v.uuid, sizeof(v.uuid),
			         "00000000-0000-0000-0000-%012ld", i % KEYS);
			snprintf(
			    v.reason, sizeof(v.reason),
			    "state verified against the manifest at start");
			v.classification = STATE_NORMAL;
			v.last_backup = 1764000000;
			v.generation = (int64_t) t; /* carries the send time */
			topic_pub_set(p, v.uuid, &v);
		}
		if (lat) {
			wait_acks(ack[0], 1);
		} else if ((i + 1) % BATCH == 0) {
			wait_acks(ack[0], 1);
		}
	}
	r.secs = (double) (now_us() - t0) / 1e6;
	{
		uint64_t l[2];
		if (read(res[0], l, sizeof(l)) == sizeof(l)) {
			r.p50 = l[0];
			r.p99 = l[1];
		}
	}
	waitpid(pid, NULL, 0);
	close(ack[0]);
	close(res[0]);
	if (kind == 0) {
		nng_close(raw);
	} else {
		topic_pub_close(p);
	}
	return r;
}

static double
snapshot_ms(void)
{
	struct topic_pub         *p;
	struct topic_sub         *s;
	const struct topic_sub_cb cb = {NULL, NULL, NULL};
	uint64_t                  t0;
	double                    ms;

	topic_pub_open(&p, run, MSG_VTPM_STATUS, NULL);
	for (int i = 0; i < 1000; i++) {
		struct vtpm_status v;
		memset(&v, 0, sizeof(v));
		snprintf(v.uuid, sizeof(v.uuid),
		         "00000000-0000-0000-0000-%012d", i);
		snprintf(v.name, sizeof(v.name), "vm-%d", i);
		v.state = VTPM_READY;
		topic_pub_set(p, v.uuid, &v);
	}
	t0 = now_us();
	topic_sub_open(&s, run, MSG_VTPM_STATUS, &cb, NULL);
	while (!topic_sub_synced(s)) {
		topic_sub_run(s, 1);
	}
	ms = (double) (now_us() - t0) / 1e3;
	if (topic_sub_count(s) != 1000) {
		fprintf(stderr, "bench: snapshot had %zu items\n",
		        topic_sub_count(s));
		exit(1);
	}
	topic_sub_close(s);
	topic_pub_close(p);
	return ms;
}

int
main(int argc, char **argv)
{
	struct result raw, top, rawl, topl;
	double        snap;

	log_init(LOG_LVL_WARN, 0);
	if (argc == 8 && strcmp(argv[1], "child") == 0) {
		snprintf(run, sizeof(run), "%s", argv[2]);
		if (atoi(argv[3]) == 0) {
			raw_child(atoi(argv[6]), atoi(argv[7]), atol(argv[4]),
			          atoi(argv[5]) != 0);
		} else {
			topic_child(atoi(argv[6]), atoi(argv[7]), atol(argv[4]),
			            atoi(argv[5]) != 0);
		}
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr,
		        "usage: pubsub_bench (writes JSON to stdout)\n");
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	snprintf(run, sizeof(run), "/tmp/pubsub-bench.XXXXXX");
	if (mkdtemp(run) == NULL) {
		return 1;
	}
	raw = run_case(0, false);
	top = run_case(1, false);
	rawl = run_case(0, true);
	topl = run_case(1, true);
	snap = snapshot_ms();
	remove_tree(run);
	printf("{\n  \"updates\": %d,\n"
	       "  \"raw_nng_msgs_per_s\": %.0f,\n"
	       "  \"topic_updates_per_s\": %.0f,\n"
	       "  \"throughput_ratio\": %.3f,\n"
	       "  \"raw_latency_us\": {\"p50\": %llu, \"p99\": %llu},\n"
	       "  \"topic_latency_us\": {\"p50\": %llu, \"p99\": %llu},\n"
	       "  \"snapshot_1000_items_ms\": %.2f,\n"
	       "  \"goals\": {\"throughput_ratio_min\": 0.5, "
	       "\"snapshot_ms_max\": 50}\n}\n",
	       UPDATES, UPDATES / raw.secs, UPDATES / top.secs,
	       (UPDATES / top.secs) / (UPDATES / raw.secs),
	       (unsigned long long) rawl.p50, (unsigned long long) rawl.p99,
	       (unsigned long long) topl.p50, (unsigned long long) topl.p99,
	       snap);
	return 0;
}
