/*
 * pubsub.h: topics of keyed items and request/reply, over NNG ipc sockets.
 *
 * Topic T of publisher P lives at two sockets in the run directory:
 *   <run>/<T>.pub   NNG pub: every change, as an envelope with a sequence
 *                   number and the publisher's epoch, plus a heartbeat;
 *   <run>/<T>.snap  NNG rep: the whole current topic on request.
 * A subscriber takes a snapshot on every (re)connect, on a sequence gap and
 * when a heartbeat shows it is behind or the publisher restarted (new epoch).
 *
 * Requests go to <run>/<service>.req (NNG req/rep), one struct in, one out.
 * Listening sockets are 0600 and drop peers whose uid is not allowed.
 */
#ifndef VTPM_PUBSUB_H
#define VTPM_PUBSUB_H

#include "msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PEER_MAX_UIDS 8

/* Who may connect to a listening socket. uid 0 and our own euid are always
 * allowed; add more (e.g. the launcher's uid for the key broker). */
struct peer_policy {
	uid_t    uids[PEER_MAX_UIDS];
	int      nuids;
	unsigned perms;       /* socket file mode, default 0600 */
	bool     only_listed; /* when true, root/own euid are not implied */
};

/* endpoint.c */
void peer_policy_init(struct peer_policy *p);
int  peer_policy_add(struct peer_policy *p, uid_t uid);
/* ipc URL for a socket file in the run directory: "ipc://<run>/<name>" */
int endpoint_url(char *dst, size_t len, const char *rundir, const char *name);

/* ---- topics: publisher side (topic_pub.c) ---- */

struct topic_pub;

/* Opens <run>/<type>.pub and .snap. Thread-safe after open: set/delete may
 * be called from any thread; snapshots are served on NNG's threads. */
int  topic_pub_open(struct topic_pub **pp, const char *rundir,
                    enum msg_type type, const struct peer_policy *policy);
void topic_pub_close(struct topic_pub *p);
/* Store and publish item (a struct of the topic's type) under key. Skips
 * the publication when the item is unchanged. 0 or -1. */
int topic_pub_set(struct topic_pub *p, const char *key, const void *item);
/* Explicit delete; publishing a delete of an unknown key is a no-op. */
int topic_pub_delete(struct topic_pub *p, const char *key);
/* Copy the current item into out (schema size); 0, or -1 if absent. */
int      topic_pub_get(struct topic_pub *p, const char *key, void *out);
size_t   topic_pub_count(struct topic_pub *p);
uint64_t topic_pub_seq(struct topic_pub *p);
/* Heartbeat period (default 1000 ms); 0 disables (tests of gap handling). */
void topic_pub_set_heartbeat(struct topic_pub *p, unsigned ms);
/* Test hook: skip the next n sequence numbers to force a gap. */
void topic_pub_test_skip(struct topic_pub *p, unsigned n);

/* ---- topics: subscriber side (topic_sub.c) ---- */

struct topic_sub_cb {
	/* item created or changed; item is a struct of the topic's type and
	 * only valid during the call */
	void (*on_set)(void *arg, const char *key, const void *item);
	/* item deleted (explicitly, or gone from a later snapshot) */
	void (*on_delete)(void *arg, const char *key);
	/* first snapshot applied: the view is now the publisher's */
	void (*on_sync)(void *arg);
};

struct topic_sub;

/* Dials <run>/<type>.pub and .snap; never fails because the publisher is
 * not there yet. Callbacks run only inside topic_sub_process(), in the
 * caller's thread. */
int  topic_sub_open(struct topic_sub **sp, const char *rundir,
                    enum msg_type type, const struct topic_sub_cb *cb,
                    void *arg);
void topic_sub_close(struct topic_sub *s);
/* fd that becomes readable when messages wait (for poll()). */
int topic_sub_fd(struct topic_sub *s);
/* Apply everything waiting, take a snapshot when needed. Returns the
 * number of milliseconds after which it wants to be called again. */
int topic_sub_process(struct topic_sub *s);
/* Loop process() for up to timeout_ms (for tools and tests). */
void topic_sub_run(struct topic_sub *s, int timeout_ms);
bool topic_sub_synced(struct topic_sub *s);
/* The subscriber's current view. get copies into out (schema size). */
int    topic_sub_get(struct topic_sub *s, const char *key, void *out);
size_t topic_sub_count(struct topic_sub *s);
/* Iterate: fn is called for each item, in key order. */
void topic_sub_foreach(struct topic_sub *s,
                       void (*fn)(void *arg, const char *key, const void *item),
                       void *arg);
/* Counters for tests: snapshots taken, gaps seen. */
uint64_t topic_sub_snapshots(struct topic_sub *s);
uint64_t topic_sub_gaps(struct topic_sub *s);
/* Snapshot retry period when the publisher is absent (default 200 ms). */
void topic_sub_set_retry(struct topic_sub *s, unsigned ms);

/* ---- request/reply (req.c) ---- */

/* Server handler: req is the decoded request (type req_type), rep is a
 * zeroed struct of the type it must fill and return in *rep_type.
 * peer_uid is the requester's uid. Runs on one of the server's worker
 * threads: must be thread-safe. Return 0 to send rep, -1 to send an
 * Error{reason} with reason filled in err. */
typedef int (*req_handler)(void *arg, enum msg_type req_type, const void *req,
                           uid_t peer_uid, enum msg_type *rep_type, void *rep,
                           char *err, size_t errlen);

struct req_server;

/* Listen on <run>/<name>.req with nworkers concurrent requests. Requests of
 * any type in accept[] (terminated by MSG_NONE) are decoded strictly; others
 * are answered with Error. */
int  req_server_open(struct req_server **sp, const char *rundir,
                     const char *name, const enum msg_type *accept, int nworkers,
                     const struct peer_policy *policy, req_handler fn,
                     void *arg);
void req_server_close(struct req_server *s);

/* One request, synchronous, with a timeout. rep is the struct of the reply
 * type that pairs with req_type (reply_type_for() in req.c: KeyRelease ->
 * KeyReleaseReply, GuardianRequest -> GuardianReply); *rep_type tells what
 * came. An Error reply, or any other type, returns -1 with err filled. */
int req_call(const char *rundir, const char *name, enum msg_type req_type,
             const void *req, enum msg_type *rep_type, void *rep,
             int timeout_ms, char *err, size_t errlen);

/* A long-lived client, for callers that send many requests. */
struct req_client;
int  req_client_open(struct req_client **cp, const char *rundir,
                     const char *name);
void req_client_close(struct req_client *c);
int  req_client_call(struct req_client *c, enum msg_type req_type,
                     const void *req, enum msg_type *rep_type, void *rep,
                     int timeout_ms, char *err, size_t errlen);

/* One-shot snapshot of a topic (vtpmctl): calls fn for each item. */
int topic_snapshot_fetch(const char *rundir, enum msg_type type,
                         void (*fn)(void *arg, const char *key,
                                    const void *item),
                         void *arg, int timeout_ms, char *err, size_t errlen);

#endif
