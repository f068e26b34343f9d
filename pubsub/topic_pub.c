/*
 * topic_pub.c: the publisher side of a topic. Keeps the current items,
 * publishes each change with the next sequence number, answers snapshot
 * requests on NNG's threads and sends a heartbeat so that subscribers that
 * missed the last change, or a restart of ours, find out.
 */
#include "pubsub_int.h"
#include "topic_item.h"
#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>

#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

struct topic_pub {
	nng_socket           pub, rep;
	const struct schema *s;
	struct peer_policy   policy; /* referenced by the pipe callbacks */
	pthread_mutex_t      mu;     /* guards everything below */
	pthread_cond_t       cv;     /* wakes the heartbeat thread */
	struct itemset       items;
	uint64_t             seq;       /* last sequence number published */
	char                 epoch[17]; /* this instance, hex */
	unsigned             skip;      /* test hook: numbers to skip */
	unsigned             hb_ms;
	bool                 closing;
	pthread_t            hb_thread;
	nng_aio             *snap_aio;
	bool                 snap_sending; /* aio is sending a reply */
};

/* A growable string for envelopes and snapshots. */
struct sbuf {
	char  *p;
	size_t len, cap;
	bool   oom;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom) {
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char  *p;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
sb_fmt(struct sbuf *b, const char *fmt, ...)
{
	char    tmp[256];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0) {
		sb_add(b, tmp,
		       (size_t) n < sizeof(tmp) ? (size_t) n : sizeof(tmp) - 1);
	}
}

/* Publish one envelope; called with mu held so numbers go out in order. */
static int
send_locked(struct topic_pub *p, const char *op, const char *key,
            const char *json)
{
	struct sbuf b = {0};
	nng_msg    *m;
	int         rv;

	if (strcmp(op, TOPIC_OP_HEARTBEAT) != 0) {
		p->seq += 1 + p->skip;
		p->skip = 0;
	}
	sb_fmt(&b,
	       "{\"topic\":\"%s\",\"epoch\":\"%s\",\"seq\":%" PRIu64
	       ",\"op\":\"%s\"",
	       p->s->name, p->epoch, p->seq, op);
	if (key != NULL) {
		sb_fmt(&b, ",\"key\":\"%s\"", key);
	}
	if (json != NULL) {
		sb_str(&b, ",\"data\":");
		sb_str(&b, json);
	}
	sb_str(&b, "}");
	if (b.oom || endpoint_msg_from_string(&m, b.p, false) < 0) {
		free(b.p);
		log_warnx("topic %s: out of memory publishing %s", p->s->name,
		          key ? key : op);
		return -1;
	}
	free(b.p);
	/* pub never blocks; on success NNG owns m */
	if ((rv = nng_sendmsg(p->pub, m, 0)) != 0) {
		nng_msg_free(m);
		log_warnx("topic %s: send: %s", p->s->name, nng_strerror(rv));
		return -1;
	}
	return 0;
}

static void *
heartbeat_main(void *arg)
{
	struct topic_pub *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->closing) {
		if (p->hb_ms == 0) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += p->hb_ms / 1000;
		ts.tv_nsec += (long) (p->hb_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT &&
		    !p->closing && p->hb_ms != 0) {
			(void) send_locked(p, TOPIC_OP_HEARTBEAT, NULL, NULL);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The whole topic as {"topic","epoch","seq","items":[{key,data}...]}. */
static char *
snapshot_locked(struct topic_pub *p)
{
	struct sbuf b = {0};

	sb_fmt(&b,
	       "{\"topic\":\"%s\",\"epoch\":\"%s\",\"seq\":%" PRIu64
	       ",\"items\":[",
	       p->s->name, p->epoch, p->seq);
	for (size_t i = 0; i < p->items.n; i++) {
		sb_fmt(&b, "%s{\"key\":\"%s\",\"data\":", i ? "," : "",
		       p->items.v[i].key);
		sb_str(&b, p->items.v[i].json);
		sb_str(&b, "}");
	}
	sb_str(&b, "]}");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* Validate a snapshot request: {"topic": <our name>}. */
static int
check_snapshot_req(struct topic_pub *p, nng_msg *m)
{
	char   why[128];
	cJSON *r =
	    msg_json_parse(nng_msg_body(m), nng_msg_len(m), why, sizeof(why));
	cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "topic");
	int ok = cJSON_IsString(t) && strcmp(t->valuestring, p->s->name) == 0;

	if (!ok) {
		log_warnx(
		    "topic %s: malformed snapshot request of %zu bytes%s%s",
		    p->s->name, nng_msg_len(m), r == NULL ? ": " : "",
		    r == NULL ? why : "");
	}
	cJSON_Delete(r);
	return ok ? 0 : -1;
}

static void
snap_cb(void *arg)
{
	struct topic_pub *p = arg;
	nng_msg          *m;
	char             *body;
	int               rv = nng_aio_result(p->snap_aio);

	if (p->snap_sending) {
		p->snap_sending = false;
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(p->snap_aio));
		}
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			return;
		}
		nng_recv_aio(p->rep, p->snap_aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
			nng_recv_aio(p->rep, p->snap_aio);
		}
		return;
	}
	m = nng_aio_get_msg(p->snap_aio);
	if (check_snapshot_req(p, m) < 0) {
		nng_msg_free(m);
		nng_recv_aio(p->rep, p->snap_aio);
		return;
	}
	nng_msg_free(m);
	pthread_mutex_lock(&p->mu);
	body = snapshot_locked(p);
	pthread_mutex_unlock(&p->mu);
	if (body == NULL || endpoint_msg_from_string(&m, body, false) < 0) {
		free(body);
		log_warnx("topic %s: out of memory for a snapshot", p->s->name);
		nng_recv_aio(p->rep, p->snap_aio);
		return;
	}
	free(body);
	nng_aio_set_msg(p->snap_aio, m);
	p->snap_sending = true;
	nng_send_aio(p->rep, p->snap_aio);
}

int
topic_pub_open(struct topic_pub **pp, const char *rundir, enum msg_type type,
               const struct peer_policy *policy)
{
	struct topic_pub *p;
	char              url[URL_LEN], name[64];
	uint64_t          rnd = 0;
	int               rv;

	*pp = NULL;
	if (msg_schema(type) == NULL || (p = calloc(1, sizeof(*p))) == NULL) {
		return -1;
	}
	p->s = msg_schema(type);
	p->hb_ms = 1000;
	if (policy != NULL) {
		p->policy = *policy;
	} else {
		peer_policy_init(&p->policy);
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		rnd = now_us() ^ ((uint64_t) getpid() << 32);
	}
	snprintf(p->epoch, sizeof(p->epoch), "%016" PRIx64, rnd);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);

	if ((rv = nng_pub0_open(&p->pub)) != 0) {
		log_warnx("topic %s: nng_pub0_open: %s", p->s->name,
		          nng_strerror(rv));
		goto fail_pub;
	}
	if ((rv = nng_rep0_open(&p->rep)) != 0) {
		log_warnx("topic %s: nng_rep0_open: %s", p->s->name,
		          nng_strerror(rv));
		goto fail_rep;
	}
	/* a burst (a boot storm) should not overflow a subscriber's queue
	 * and cost it a resnapshot; NNG's default is 16 messages */
	(void) nng_socket_set_int(p->pub, NNG_OPT_SENDBUF, 8192);
	(void) nng_socket_set_size(p->pub, NNG_OPT_RECVMAXSZ, 4096);
	(void) nng_socket_set_size(p->rep, NNG_OPT_RECVMAXSZ, 4096);
	snprintf(name, sizeof(name), "%s.pub", p->s->name);
	if (endpoint_url(url, sizeof(url), rundir, name) < 0 ||
	    endpoint_listen(p->pub, url, &p->policy) < 0) {
		goto fail_listen;
	}
	snprintf(name, sizeof(name), "%s.snap", p->s->name);
	if (endpoint_url(url, sizeof(url), rundir, name) < 0 ||
	    endpoint_listen(p->rep, url, &p->policy) < 0) {
		goto fail_listen;
	}
	if ((rv = nng_aio_alloc(&p->snap_aio, snap_cb, p)) != 0) {
		goto fail_listen;
	}
	if (pthread_create(&p->hb_thread, NULL, heartbeat_main, p) != 0) {
		goto fail_thread;
	}
	nng_recv_aio(p->rep, p->snap_aio);
	log_debug("topic %s: publishing, epoch %s", p->s->name, p->epoch);
	*pp = p;
	return 0;

fail_thread:
	nng_aio_free(p->snap_aio);
fail_listen:
	nng_close(p->rep);
fail_rep:
	nng_close(p->pub);
fail_pub:
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return -1;
}

void
topic_pub_close(struct topic_pub *p)
{
	if (p == NULL) {
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->closing = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->hb_thread, NULL);
	nng_aio_stop(p->snap_aio);
	nng_close(p->rep);
	nng_close(p->pub);
	nng_aio_free(p->snap_aio);
	items_clear(&p->items);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int
topic_pub_set(struct topic_pub *p, const char *key, const void *item)
{
	cJSON       *obj;
	char        *json, why[REASON_LEN];
	void        *check;
	struct item *it;
	int          rc = -1;

	if (!uuid_valid(key)) {
		log_warnx("topic %s: refusing item with invalid key \"%.40s\"",
		          p->s->name, key);
		return -1;
	}
	obj = schema_encode(p->s, item);
	if (obj == NULL) {
		log_warnx("topic %s: cannot encode %s", p->s->name, key);
		return -1;
	}
	/* what subscribers would reject is refused here, where the bug is */
	if ((check = malloc(p->s->size)) == NULL ||
	    schema_decode(p->s, obj, check, why, sizeof(why)) < 0) {
		log_warnx("topic %s: item %s refused: %s", p->s->name, key,
		          check ? why : "out of memory");
		free(check);
		cJSON_Delete(obj);
		return -1;
	}
	free(check);
	json = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (json == NULL) {
		log_warnx("topic %s: cannot encode %s", p->s->name, key);
		return -1;
	}
	if (strlen(json) > MSG_MAX) {
		log_warnx("topic %s: item %s over %d bytes", p->s->name, key,
		          MSG_MAX);
		free(json);
		return -1;
	}
	pthread_mutex_lock(&p->mu);
	it = items_find(&p->items, key);
	if (it != NULL && strcmp(it->json, json) == 0) {
		free(json); /* unchanged: nothing to tell anyone */
		rc = 0;
		goto out;
	}
	if (it == NULL) {
		if ((it = items_insert(&p->items, key)) == NULL) {
			free(json);
			goto out;
		}
		if ((it->data = malloc(p->s->size)) == NULL) {
			items_remove(&p->items, it);
			free(json);
			goto out;
		}
	}
	memcpy(it->data, item, p->s->size);
	free(it->json);
	it->json = json;
	rc = send_locked(p, TOPIC_OP_SET, key, json);
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
topic_pub_delete(struct topic_pub *p, const char *key)
{
	struct item *it;
	int          rc = 0;

	pthread_mutex_lock(&p->mu);
	if ((it = items_find(&p->items, key)) != NULL) {
		items_remove(&p->items, it);
		rc = send_locked(p, TOPIC_OP_DELETE, key, NULL);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
topic_pub_get(struct topic_pub *p, const char *key, void *out)
{
	struct item *it;
	int          rc = -1;

	pthread_mutex_lock(&p->mu);
	if ((it = items_find(&p->items, key)) != NULL) {
		memcpy(out, it->data, p->s->size);
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

size_t
topic_pub_count(struct topic_pub *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->items.n;
	pthread_mutex_unlock(&p->mu);
	return n;
}

uint64_t
topic_pub_seq(struct topic_pub *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->mu);
	n = p->seq;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void
topic_pub_set_heartbeat(struct topic_pub *p, unsigned ms)
{
	pthread_mutex_lock(&p->mu);
	p->hb_ms = ms;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void
topic_pub_test_skip(struct topic_pub *p, unsigned n)
{
	pthread_mutex_lock(&p->mu);
	p->skip = n;
	pthread_mutex_unlock(&p->mu);
}
