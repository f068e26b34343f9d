/*
 * topic_sub.c: the subscriber side of a topic. Applies live changes in
 * sequence order; takes a snapshot on (re)connect, on a gap, and when a
 * heartbeat shows it is behind or the publisher is a new instance.
 * Everything runs in the caller's thread, inside topic_sub_process().
 */
#include "pubsub_int.h"
#include "topic_item.h"
#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#define SNAPSHOT_TIMEOUT_MS 1000
#define IDLE_MS             1000

struct topic_sub {
	nng_socket           sub, req;
	const struct schema *s;
	struct topic_sub_cb  cb;
	void                *arg;
	struct itemset       items;
	char                 epoch[17]; /* publisher instance we follow */
	uint64_t             seq;       /* last sequence number applied */
	bool                 synced;    /* first snapshot applied */
	bool                 need_snap;
	atomic_int           reconnected; /* set on NNG's thread */
	uint64_t             next_try_ms;
	unsigned             retry_ms;   /* longest wait between tries */
	unsigned             backoff_ms; /* current wait between tries */
	uint64_t             nsnap, ngaps;
	int                  fd;
};

/* ---- parsing shared by live messages and snapshots ---- */

static bool
only_fields(const cJSON *obj, const char *const *allowed)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, obj)
	{
		bool ok = false;
		for (int i = 0; allowed[i] != NULL && !ok; i++) {
			ok = v->string && strcmp(v->string, allowed[i]) == 0;
		}
		if (!ok) {
			return false;
		}
	}
	return true;
}

static int
get_seq(const cJSON *obj, uint64_t *seq)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "seq");

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble > 9007199254740992.0) {
		return -1;
	}
	*seq = (uint64_t) v->valuedouble;
	return 0;
}

static int
get_epoch(const cJSON *obj, char *epoch)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "epoch");

	if (!cJSON_IsString(v) || strlen(v->valuestring) != 16) {
		return -1;
	}
	memcpy(epoch, v->valuestring, 17);
	return 0;
}

/* Decode {key, data} into a new slot of set; a bad item is logged and
 * skipped (nothing of it is applied). */
static int
add_item(const struct schema *s, struct itemset *set, const cJSON *key,
         const cJSON *data, char *err, size_t errlen)
{
	struct item *it;
	void        *item;

	if (!cJSON_IsString(key) || !uuid_valid(key->valuestring)) {
		snprintf(err, errlen, "item with missing or invalid key");
		return -1;
	}
	if ((item = malloc(s->size)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (schema_decode(s, data, item, err, errlen) < 0) {
		free(item);
		return -1;
	}
	if ((it = items_find(set, key->valuestring)) == NULL &&
	    (it = items_insert(set, key->valuestring)) == NULL) {
		free(item);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(it->data);
	it->data = item;
	return 0;
}

/* Parse a snapshot reply into set. */
static int
parse_snapshot(const struct schema *s, const void *buf, size_t len,
               struct itemset *set, char *epoch, uint64_t *seq, char *err,
               size_t errlen)
{
	static const char *const top[] = {"topic", "epoch", "seq", "items",
	                                  NULL};
	static const char *const item[] = {"key", "data", NULL};
	cJSON                   *r, *t, *items, *e;
	int                      rc = -1;

	if ((r = msg_json_parse(buf, len, err, errlen)) == NULL) {
		return -1;
	}
	t = cJSON_GetObjectItemCaseSensitive(r, "topic");
	items = cJSON_GetObjectItemCaseSensitive(r, "items");
	if (!cJSON_IsObject(r) || !only_fields(r, top) || !cJSON_IsString(t) ||
	    strcmp(t->valuestring, s->name) != 0 || get_seq(r, seq) < 0 ||
	    get_epoch(r, epoch) < 0 || !cJSON_IsArray(items)) {
		snprintf(err, errlen, "snapshot: bad envelope");
		goto out;
	}
	cJSON_ArrayForEach(e, items)
	{
		char why[REASON_LEN];

		if (!cJSON_IsObject(e) || !only_fields(e, item) ||
		    add_item(s, set, cJSON_GetObjectItemCaseSensitive(e, "key"),
		             cJSON_GetObjectItemCaseSensitive(e, "data"), why,
		             sizeof(why)) < 0) {
			log_warnx("topic %s: snapshot item rejected: %s",
			          s->name,
			          cJSON_IsObject(e) ? why : "not an object");
		}
	}
	rc = 0;
out:
	cJSON_Delete(r);
	return rc;
}

/* Send {"topic": name} on req and wait for the answer. */
static int
request_snapshot(nng_socket req, const struct schema *s, nng_msg **rep,
                 int timeout_ms)
{
	char     body[96];
	nng_msg *m;
	int      rv;

	snprintf(body, sizeof(body), "{\"topic\":\"%s\"}", s->name);
	if (endpoint_msg_from_string(&m, body, false) < 0) {
		return NNG_ENOMEM;
	}
	/* NONBLOCK: no publisher connected means "try later", not a wait */
	if ((rv = nng_sendmsg(req, m, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	(void) nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, timeout_ms);
	return nng_recvmsg(req, rep, 0);
}

static void
sub_pipe_added(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct topic_sub *s = arg;

	(void) pipe;
	(void) ev;
	atomic_store(&s->reconnected, 1);
}

/* ---- snapshot application ---- */

static int
take_snapshot(struct topic_sub *s)
{
	struct itemset fresh = {0}, old;
	nng_msg       *rep;
	char           epoch[17], err[REASON_LEN];
	uint64_t       seq;
	int            rv;

	if ((rv = request_snapshot(s->req, s->s, &rep, SNAPSHOT_TIMEOUT_MS)) !=
	    0) {
		log_debug("topic %s: snapshot not available: %s", s->s->name,
		          nng_strerror(rv));
		return -1;
	}
	rv = parse_snapshot(s->s, nng_msg_body(rep), nng_msg_len(rep), &fresh,
	                    epoch, &seq, err, sizeof(err));
	nng_msg_free(rep);
	if (rv < 0) {
		log_warnx("topic %s: %s", s->s->name, err);
		items_clear(&fresh);
		return -1;
	}
	old = s->items;
	s->items = fresh;
	memcpy(s->epoch, epoch, sizeof(s->epoch));
	s->seq = seq;
	s->nsnap++;
	log_debug("topic %s: snapshot of %zu items at seq %" PRIu64, s->s->name,
	          fresh.n, seq);

	/* tell the owner what changed relative to its old view */
	for (size_t i = 0; i < s->items.n; i++) {
		struct item *o = items_find(&old, s->items.v[i].key);
		if ((o == NULL ||
		     memcmp(o->data, s->items.v[i].data, s->s->size) != 0) &&
		    s->cb.on_set != NULL) {
			s->cb.on_set(s->arg, s->items.v[i].key,
			             s->items.v[i].data);
		}
	}
	for (size_t i = 0; i < old.n; i++) {
		if (items_find(&s->items, old.v[i].key) == NULL &&
		    s->cb.on_delete != NULL) {
			s->cb.on_delete(s->arg, old.v[i].key);
		}
	}
	items_clear(&old);
	if (!s->synced) {
		s->synced = true;
		if (s->cb.on_sync != NULL) {
			s->cb.on_sync(s->arg);
		}
	}
	return 0;
}

/* ---- live messages ---- */

static void
apply_live(struct topic_sub *s, const char *op, const cJSON *key,
           const cJSON *data)
{
	char         err[REASON_LEN];
	struct item *it;

	if (strcmp(op, TOPIC_OP_SET) == 0) {
		it = cJSON_IsString(key)
		         ? items_find(&s->items, key->valuestring)
		         : NULL;
		void *before = NULL;
		if (it != NULL && (before = malloc(s->s->size)) != NULL) {
			memcpy(before, it->data, s->s->size);
		}
		if (add_item(s->s, &s->items, key, data, err, sizeof(err)) <
		    0) {
			log_warnx("topic %s: item rejected: %s", s->s->name,
			          err);
			free(before);
			return;
		}
		it = items_find(&s->items, key->valuestring);
		if ((before == NULL ||
		     memcmp(before, it->data, s->s->size) != 0) &&
		    s->cb.on_set != NULL) {
			s->cb.on_set(s->arg, it->key, it->data);
		}
		free(before);
		return;
	}
	/* delete */
	if (cJSON_IsString(key) &&
	    (it = items_find(&s->items, key->valuestring)) != NULL) {
		char k[UUID_LEN];
		memcpy(k, it->key, sizeof(k));
		items_remove(&s->items, it);
		if (s->cb.on_delete != NULL) {
			s->cb.on_delete(s->arg, k);
		}
	}
}

static void
handle_live(struct topic_sub *s, nng_msg *m)
{
	static const char *const env[] = {"topic", "epoch", "seq", "op",
	                                  "key",   "data",  NULL};
	cJSON                   *r, *t, *op;
	char                     epoch[17], why[128];
	uint64_t                 seq;

	if (nng_msg_len(m) > ENVELOPE_MAX) {
		log_warnx("topic %s: message of %zu bytes over the limit",
		          s->s->name, nng_msg_len(m));
		return;
	}
	if ((r = msg_json_parse(nng_msg_body(m), nng_msg_len(m), why,
	                        sizeof(why))) == NULL) {
		log_warnx("topic %s: message of %zu bytes dropped: %s",
		          s->s->name, nng_msg_len(m), why);
		return;
	}
	t = cJSON_GetObjectItemCaseSensitive(r, "topic");
	op = cJSON_GetObjectItemCaseSensitive(r, "op");
	if (!cJSON_IsObject(r) || !only_fields(r, env) || !cJSON_IsString(t) ||
	    strcmp(t->valuestring, s->s->name) != 0 || !cJSON_IsString(op) ||
	    (strcmp(op->valuestring, TOPIC_OP_SET) != 0 &&
	     strcmp(op->valuestring, TOPIC_OP_DELETE) != 0 &&
	     strcmp(op->valuestring, TOPIC_OP_HEARTBEAT) != 0) ||
	    get_seq(r, &seq) < 0 || get_epoch(r, epoch) < 0) {
		log_warnx("topic %s: malformed message of %zu bytes dropped",
		          s->s->name, nng_msg_len(m));
		goto out;
	}
	if (s->need_snap || !s->synced) {
		goto out; /* the coming snapshot covers it */
	}
	if (strcmp(epoch, s->epoch) != 0) {
		log_info("topic %s: publisher restarted, resynchronizing",
		         s->s->name);
		s->need_snap = true;
		goto out;
	}
	if (strcmp(op->valuestring, TOPIC_OP_HEARTBEAT) == 0) {
		if (seq != s->seq) {
			log_info("topic %s: heartbeat at seq %" PRIu64
			         ", have %" PRIu64 ": resynchronizing",
			         s->s->name, seq, s->seq);
			s->ngaps++;
			s->need_snap = true;
		}
		goto out;
	}
	if (seq <= s->seq) {
		goto out; /* already in our snapshot */
	}
	if (seq != s->seq + 1) {
		log_info("topic %s: gap (seq %" PRIu64 " after %" PRIu64
		         "): resynchronizing",
		         s->s->name, seq, s->seq);
		s->ngaps++;
		s->need_snap = true;
		goto out;
	}
	s->seq = seq;
	apply_live(s, op->valuestring,
	           cJSON_GetObjectItemCaseSensitive(r, "key"),
	           cJSON_GetObjectItemCaseSensitive(r, "data"));
out:
	cJSON_Delete(r);
}

/* ---- public API ---- */

int
topic_sub_open(struct topic_sub **sp, const char *rundir, enum msg_type type,
               const struct topic_sub_cb *cb, void *arg)
{
	struct topic_sub *s;
	char              url[URL_LEN], name[64];
	int               rv;

	*sp = NULL;
	if (msg_schema(type) == NULL || (s = calloc(1, sizeof(*s))) == NULL) {
		return -1;
	}
	s->s = msg_schema(type);
	s->cb = *cb;
	s->arg = arg;
	s->retry_ms = 100;
	s->need_snap = true;
	atomic_init(&s->reconnected, 0);

	if ((rv = nng_sub0_open(&s->sub)) != 0) {
		goto fail_sub;
	}
	if ((rv = nng_req0_open(&s->req)) != 0) {
		goto fail_req;
	}
	if ((rv = nng_socket_set(s->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_size(s->sub, NNG_OPT_RECVMAXSZ,
	                              ENVELOPE_MAX)) != 0 ||
	    (rv = nng_socket_set_int(s->sub, NNG_OPT_RECVBUF, 8192)) != 0 ||
	    (rv = nng_socket_set_size(s->req, NNG_OPT_RECVMAXSZ,
	                              MSG_SNAPSHOT_MAX)) != 0 ||
	    (rv = nng_pipe_notify(s->sub, NNG_PIPE_EV_ADD_POST, sub_pipe_added,
	                          s)) != 0 ||
	    (rv = nng_socket_get_int(s->sub, NNG_OPT_RECVFD, &s->fd)) != 0) {
		goto fail_opt;
	}
	snprintf(name, sizeof(name), "%s.pub", s->s->name);
	if (endpoint_url(url, sizeof(url), rundir, name) < 0 ||
	    endpoint_dial(s->sub, url) < 0) {
		goto fail_dial;
	}
	snprintf(name, sizeof(name), "%s.snap", s->s->name);
	if (endpoint_url(url, sizeof(url), rundir, name) < 0 ||
	    endpoint_dial(s->req, url) < 0) {
		goto fail_dial;
	}
	*sp = s;
	return 0;

fail_opt:
	log_warnx("topic %s: subscriber setup: %s", s->s->name,
	          nng_strerror(rv));
fail_dial:
	nng_close(s->req);
fail_req:
	nng_close(s->sub);
fail_sub:
	free(s);
	return -1;
}

void
topic_sub_close(struct topic_sub *s)
{
	if (s == NULL) {
		return;
	}
	nng_close(s->sub);
	nng_close(s->req);
	items_clear(&s->items);
	free(s);
}

int
topic_sub_fd(struct topic_sub *s)
{
	return s->fd;
}

int
topic_sub_process(struct topic_sub *s)
{
	nng_msg *m;
	uint64_t now;

	while (nng_recvmsg(s->sub, &m, NNG_FLAG_NONBLOCK) == 0) {
		handle_live(s, m);
		nng_msg_free(m);
	}
	if (atomic_exchange(&s->reconnected, 0)) {
		s->need_snap = true;
	}
	now = now_ms();
	if (s->need_snap && now >= s->next_try_ms) {
		if (take_snapshot(s) == 0) {
			s->need_snap = false;
			s->backoff_ms = 0;
		} else {
			/* the publisher is usually just a few ms from being
			 * connected: retry soon, then back off to retry_ms */
			s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 2;
			if (s->backoff_ms > s->retry_ms) {
				s->backoff_ms = s->retry_ms;
			}
			s->next_try_ms = now_ms() + s->backoff_ms;
		}
	}
	if (!s->need_snap) {
		return IDLE_MS;
	}
	now = now_ms();
	return s->next_try_ms > now ? (int) (s->next_try_ms - now) : 1;
}

void
topic_sub_run(struct topic_sub *s, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t) timeout_ms;

	for (;;) {
		int           t = topic_sub_process(s);
		uint64_t      now = now_ms();
		struct pollfd pfd = {.fd = s->fd, .events = POLLIN};

		if (now >= end) {
			return;
		}
		if ((uint64_t) t > end - now) {
			t = (int) (end - now);
		}
		(void) poll(&pfd, 1, t);
	}
}

bool
topic_sub_synced(struct topic_sub *s)
{
	return s->synced;
}

int
topic_sub_get(struct topic_sub *s, const char *key, void *out)
{
	struct item *it = items_find(&s->items, key);

	if (it == NULL) {
		return -1;
	}
	memcpy(out, it->data, s->s->size);
	return 0;
}

size_t
topic_sub_count(struct topic_sub *s)
{
	return s->items.n;
}

void
topic_sub_foreach(struct topic_sub *s,
                  void (*fn)(void *arg, const char *key, const void *item),
                  void *arg)
{
	for (size_t i = 0; i < s->items.n; i++) {
		fn(arg, s->items.v[i].key, s->items.v[i].data);
	}
}

uint64_t
topic_sub_snapshots(struct topic_sub *s)
{
	return s->nsnap;
}

uint64_t
topic_sub_gaps(struct topic_sub *s)
{
	return s->ngaps;
}

void
topic_sub_set_retry(struct topic_sub *s, unsigned ms)
{
	s->retry_ms = ms;
}

int
topic_snapshot_fetch(const char *rundir, enum msg_type type,
                     void (*fn)(void *arg, const char *key, const void *item),
                     void *arg, int timeout_ms, char *err, size_t errlen)
{
	const struct schema *s = msg_schema(type);
	struct itemset       set = {0};
	nng_socket           req;
	nng_msg             *rep = NULL;
	char                 url[URL_LEN], name[64], epoch[17];
	uint64_t             seq, end = now_ms() + (uint64_t) timeout_ms;
	int                  rv;

	if (s == NULL || nng_req0_open(&req) != 0) {
		snprintf(err, errlen, "cannot open a request socket");
		return -1;
	}
	(void) nng_socket_set_size(req, NNG_OPT_RECVMAXSZ, MSG_SNAPSHOT_MAX);
	snprintf(name, sizeof(name), "%s.snap", s->name);
	if (endpoint_url(url, sizeof(url), rundir, name) < 0 ||
	    endpoint_dial(req, url) < 0) {
		snprintf(err, errlen, "%s: cannot dial", name);
		nng_close(req);
		return -1;
	}
	do {
		uint64_t now = now_ms();
		int      left = now < end ? (int) (end - now) : 1;

		rv = request_snapshot(req, s, &rep, left);
		if (rv == NNG_EAGAIN) {
			sleep_ms(10); /* not connected yet */
		}
	} while (rv == NNG_EAGAIN && now_ms() < end);
	nng_close(req);
	if (rv != 0) {
		snprintf(err, errlen,
		         "%s/%s: no answer (%s): is its publisher "
		         "running?",
		         rundir, name, nng_strerror(rv));
		return -1;
	}
	rv = parse_snapshot(s, nng_msg_body(rep), nng_msg_len(rep), &set, epoch,
	                    &seq, err, errlen);
	nng_msg_free(rep);
	if (rv == 0) {
		for (size_t i = 0; i < set.n; i++) {
			fn(arg, set.v[i].key, set.v[i].data);
		}
	}
	items_clear(&set);
	return rv;
}
