/* pubsub_test.c: topics and requests over real NNG ipc sockets, in one
 * process (the multi-process kill/restart cases are in
 * tests/integration/pubsub_*.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "pubsub.h"

struct view {
	int sets, deletes, syncs;
};

static void
on_set(void *arg, const char *key, const void *item)
{
	(void) key;
	(void) item;
	((struct view *) arg)->sets++;
}

static void
on_delete(void *arg, const char *key)
{
	(void) key;
	((struct view *) arg)->deletes++;
}

static void
on_sync(void *arg)
{
	((struct view *) arg)->syncs++;
}

static const struct topic_sub_cb cbs = {on_set, on_delete, on_sync};

static char rundir[128];

static int
setup(void **state)
{
	(void) state;
	snprintf(rundir, sizeof(rundir), "/tmp/pubsub-test.XXXXXX");
	assert_non_null(mkdtemp(rundir));
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	remove_tree(rundir);
	return 0;
}

static void
mkuuid(char *dst, int i)
{
	snprintf(dst, UUID_LEN, "00000000-0000-0000-0000-%012d", i);
}

static void
set_status(struct topic_pub *p, int i, int state, const char *name)
{
	struct vtpm_status v;

	memset(&v, 0, sizeof(v));
	mkuuid(v.uuid, i);
	snprintf(v.name, sizeof(v.name), "%s", name);
	v.state = state;
	v.pid = 1000 + i;
	assert_int_equal(topic_pub_set(p, v.uuid, &v), 0);
}

/* Run the subscriber until cond holds (or 5 s pass). */
#define RUN_UNTIL(sub, cond)                                                   \
	do {                                                                   \
		uint64_t end_ = now_ms() + 5000;                               \
		while (!(cond) && now_ms() < end_) {                           \
			topic_sub_run(sub, 20);                                \
		}                                                              \
		assert_true(cond);                                             \
	} while (0)

/* The subscriber's view equals the publisher's, item by item. */
static int
same_view(struct topic_pub *p, struct topic_sub *s)
{
	struct vtpm_status a, b;
	char               key[UUID_LEN];

	if (topic_pub_count(p) != topic_sub_count(s)) {
		return 0;
	}
	for (int i = 0; i < 2000; i++) {
		mkuuid(key, i);
		int ha = topic_pub_get(p, key, &a) == 0;
		int hb = topic_sub_get(s, key, &b) == 0;
		if (ha != hb || (ha && memcmp(&a, &b, sizeof(a)) != 0)) {
			return 0;
		}
	}
	return 1;
}

static void
test_sync_update_delete(void **state)
{
	struct topic_pub  *p;
	struct topic_sub  *s;
	struct view        v = {0};
	struct vtpm_status got;
	char               key[UUID_LEN];

	(void) state;
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	set_status(p, 1, VTPM_READY, "a");
	set_status(p, 2, VTPM_STARTING, "b");
	assert_int_equal(topic_sub_open(&s, rundir, MSG_VTPM_STATUS, &cbs, &v),
	                 0);
	RUN_UNTIL(s, topic_sub_synced(s));
	assert_int_equal(v.syncs, 1);
	assert_int_equal(v.sets, 2);
	assert_true(same_view(p, s));

	set_status(p, 2, VTPM_READY, "b");
	RUN_UNTIL(s, v.sets == 3);
	mkuuid(key, 2);
	assert_int_equal(topic_sub_get(s, key, &got), 0);
	assert_int_equal(got.state, VTPM_READY);

	/* an unchanged item is not published again */
	set_status(p, 2, VTPM_READY, "b");
	topic_sub_run(s, 100);
	assert_int_equal(v.sets, 3);

	assert_int_equal(topic_pub_delete(p, key), 0);
	RUN_UNTIL(s, v.deletes == 1);
	assert_int_equal(topic_sub_get(s, key, &got), -1);
	assert_true(same_view(p, s));
	assert_int_equal(v.syncs, 1);

	topic_sub_close(s);
	topic_pub_close(p);
}

static void
test_gap_resnapshots(void **state)
{
	struct topic_pub *p;
	struct topic_sub *s;
	struct view       v = {0};

	(void) state;
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	topic_pub_set_heartbeat(p, 0);
	set_status(p, 1, VTPM_READY, "a");
	assert_int_equal(topic_sub_open(&s, rundir, MSG_VTPM_STATUS, &cbs, &v),
	                 0);
	RUN_UNTIL(s, topic_sub_synced(s));
	uint64_t snaps = topic_sub_snapshots(s);

	topic_pub_test_skip(p, 1); /* the next update jumps a number */
	set_status(p, 2, VTPM_READY, "b");
	RUN_UNTIL(s, topic_sub_snapshots(s) > snaps);
	assert_int_equal(topic_sub_gaps(s), 1);
	assert_true(same_view(p, s));
	topic_sub_close(s);
	topic_pub_close(p);
}

static void
test_heartbeat_catches_missed_update(void **state)
{
	struct topic_pub *p;
	struct topic_sub *s;
	struct view       v = {0};

	(void) state;
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	topic_pub_set_heartbeat(p, 50);
	set_status(p, 1, VTPM_READY, "a");
	assert_int_equal(topic_sub_open(&s, rundir, MSG_VTPM_STATUS, &cbs, &v),
	                 0);
	RUN_UNTIL(s, topic_sub_synced(s));
	/* the last update is lost (skipped number, nothing after it): only
	 * the heartbeat can tell the subscriber */
	topic_pub_test_skip(p, 1);
	set_status(p, 2, VTPM_READY, "b");
	RUN_UNTIL(s, same_view(p, s));
	topic_sub_close(s);
	topic_pub_close(p);
}

static void
test_publisher_restart(void **state)
{
	struct topic_pub *p;
	struct topic_sub *s;
	struct view       v = {0};

	(void) state;
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	set_status(p, 1, VTPM_READY, "a");
	set_status(p, 2, VTPM_READY, "b");
	assert_int_equal(topic_sub_open(&s, rundir, MSG_VTPM_STATUS, &cbs, &v),
	                 0);
	RUN_UNTIL(s, topic_sub_synced(s) && topic_sub_count(s) == 2);
	topic_pub_close(p);

	/* a new instance with other items: the subscriber must forget 1 */
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	set_status(p, 2, VTPM_FAILED, "b");
	set_status(p, 3, VTPM_READY, "c");
	RUN_UNTIL(s, same_view(p, s));
	assert_int_equal(v.deletes, 1);
	assert_int_equal(v.syncs, 1);
	topic_sub_close(s);
	topic_pub_close(p);
}

static void
test_thousand_item_snapshot(void **state)
{
	struct topic_pub *p;
	struct topic_sub *s;
	struct view       v = {0};

	(void) state;
	assert_int_equal(topic_pub_open(&p, rundir, MSG_VTPM_STATUS, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		set_status(p, i, VTPM_READY, "many");
	}
	assert_int_equal(topic_sub_open(&s, rundir, MSG_VTPM_STATUS, &cbs, &v),
	                 0);
	RUN_UNTIL(s, topic_sub_synced(s));
	assert_int_equal(topic_sub_count(s), 1000);
	assert_int_equal(v.sets, 1000);
	assert_true(same_view(p, s));
	topic_sub_close(s);
	topic_pub_close(p);
}

static void
test_snapshot_fetch_absent_publisher(void **state)
{
	char err[256];
	int  n = 0;

	(void) state;
	assert_int_equal(topic_snapshot_fetch(rundir, MSG_VTPM_STATUS, NULL, &n,
	                                      100, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "VtpmStatus.snap"));
}

/* ---- requests ---- */

static int
guardian_echo(void *arg, enum msg_type t, const void *req, uid_t uid,
              enum msg_type *rt, void *rep, char *err, size_t errlen)
{
	const struct guardian_req *g = req;
	struct guardian_rep       *r = rep;

	(void) arg;
	(void) uid;
	assert_int_equal(t, MSG_GUARDIAN_REQ);
	if (g->op == GOP_PURGE) {
		snprintf(err, errlen, "vm %s is running", g->uuid);
		return -1;
	}
	*rt = MSG_GUARDIAN_REP;
	snprintf(r->uuid, sizeof(r->uuid), "%s", g->uuid);
	r->ok = true;
	r->classification = STATE_NORMAL;
	r->generation = 7;
	return 0;
}

static const enum msg_type guardian_types[] = {MSG_GUARDIAN_REQ, MSG_NONE};

static void
test_request_reply(void **state)
{
	struct req_server  *srv;
	struct guardian_req q;
	struct guardian_rep r;
	enum msg_type       rt;
	char                err[256];
	struct stat         st;
	char                path[256];

	(void) state;
	assert_int_equal(req_server_open(&srv, rundir, "guardian",
	                                 guardian_types, 4, NULL, guardian_echo,
	                                 NULL),
	                 0);
	snprintf(path, sizeof(path), "%s/guardian.req", rundir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	memset(&q, 0, sizeof(q));
	q.op = GOP_PREPARE;
	mkuuid(q.uuid, 5);
	assert_int_equal(req_call(rundir, "guardian", MSG_GUARDIAN_REQ, &q, &rt,
	                          &r, 2000, err, sizeof(err)),
	                 0);
	assert_int_equal(rt, MSG_GUARDIAN_REP);
	assert_string_equal(r.uuid, q.uuid);
	assert_int_equal(r.generation, 7);

	/* handler refusal comes back as an Error with its reason */
	q.op = GOP_PURGE;
	assert_int_equal(req_call(rundir, "guardian", MSG_GUARDIAN_REQ, &q, &rt,
	                          &r, 2000, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "is running"));

	/* a type the server does not serve */
	struct key_release_req k;
	memset(&k, 0, sizeof(k));
	mkuuid(k.uuid, 1);
	assert_int_equal(req_call(rundir, "guardian", MSG_KEY_RELEASE_REQ, &k,
	                          &rt, &r, 2000, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "does not serve KeyRelease"));
	req_server_close(srv);

	/* nobody listening: a timeout, not a hang */
	uint64_t t0 = now_ms();
	q.op = GOP_QUERY;
	assert_int_equal(req_call(rundir, "guardian", MSG_GUARDIAN_REQ, &q, &rt,
	                          &r, 200, err, sizeof(err)),
	                 -1);
	assert_true(now_ms() - t0 < 2000);
}

/* Closing a server right after it answered (its worker may still be
 * inside nng_ctx_send) must not crash: NNG 1.5.2 panicked on a destroyed
 * mutex when the socket was closed first. */
static void
test_close_right_after_reply(void **state)
{
	struct req_server  *srv;
	struct guardian_req q;
	struct guardian_rep r;
	enum msg_type       rt;
	char                err[256];

	(void) state;
	memset(&q, 0, sizeof(q));
	q.op = GOP_PREPARE;
	mkuuid(q.uuid, 5);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(req_server_open(&srv, rundir, "guardian",
		                                 guardian_types, 4, NULL,
		                                 guardian_echo, NULL),
		                 0);
		assert_int_equal(req_call(rundir, "guardian", MSG_GUARDIAN_REQ,
		                          &q, &rt, &r, 2000, err, sizeof(err)),
		                 0);
		req_server_close(srv);
	}
}

static void
test_malformed_request_gets_error(void **state)
{
	struct req_server *srv;
	nng_socket         sock;
	char               url[256], *reply = NULL;
	size_t             len;
	const char        *bad = "{\"type\":\"GuardianRequest\",\"version\":1,"
	                         "\"op\":\"prepare\",\"uuid\":\"x\"}";

	(void) state;
	assert_int_equal(req_server_open(&srv, rundir, "guardian",
	                                 guardian_types, 1, NULL, guardian_echo,
	                                 NULL),
	                 0);
	snprintf(url, sizeof(url), "ipc://%s/guardian.req", rundir);
	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	assert_int_equal(nng_send(sock, (void *) bad, strlen(bad), 0), 0);
	assert_int_equal(nng_recv(sock, &reply, &len, NNG_FLAG_ALLOC), 0);
	assert_non_null(memmem(reply, len, "\"type\":\"Error\"", 14));
	assert_non_null(memmem(reply, len, "invalid UUID", 12));
	nng_free(reply, len);
	nng_close(sock);
	req_server_close(srv);
}

static void
test_peer_uid_refused(void **state)
{
	struct req_server  *srv;
	struct peer_policy  pol;
	struct guardian_req q;
	struct guardian_rep r;
	enum msg_type       rt;
	char                err[256];

	(void) state;
	/* allow only a uid that is not ours: our own requests are dropped */
	peer_policy_init(&pol);
	pol.only_listed = true;
	peer_policy_add(&pol, geteuid() + 4242);
	assert_int_equal(req_server_open(&srv, rundir, "guardian",
	                                 guardian_types, 1, &pol, guardian_echo,
	                                 NULL),
	                 0);
	memset(&q, 0, sizeof(q));
	mkuuid(q.uuid, 5);
	assert_int_equal(req_call(rundir, "guardian", MSG_GUARDIAN_REQ, &q, &rt,
	                          &r, 300, err, sizeof(err)),
	                 -1);
	req_server_close(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sync_update_delete, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_gap_resnapshots, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_heartbeat_catches_missed_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_publisher_restart, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_thousand_item_snapshot, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_snapshot_fetch_absent_publisher, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_reply, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_close_right_after_reply, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_request_gets_error,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_uid_refused, setup,
	                                    teardown),
	};
	log_init(LOG_LVL_WARN, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
