/*
 * req.c: request/reply. A server runs nworkers threads, each with its own
 * NNG context, so slow requests (a TPM unseal) do not queue behind each
 * other. Requests are decoded strictly before the handler sees them; every
 * buffer that held a message is wiped before it is freed.
 */
#include "pubsub_int.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#define REQ_WORKERS_MAX 64

/* Big enough for any request or reply struct. */
union msg_any {
	struct domain_status     ds;
	struct vtpm_status       vs;
	struct vtpm_state_health sh;
	struct keybroker_status  kb;
	struct key_release_req   krq;
	struct key_release_rep   krp;
	struct guardian_req      grq;
	struct guardian_rep      grp;
	struct error_rep         err;
	struct key_admin_req     karq;
	struct key_admin_rep     karp;
	struct attest_req        arq;
	struct attest_rep        arp;
};

struct req_server;

struct req_worker {
	struct req_server *srv;
	pthread_t          thread;
	nng_ctx            ctx;
	nng_aio           *aio;
};

struct req_server {
	nng_socket         sock;
	char               name[64];
	enum msg_type      accept[MSG_TYPE_COUNT];
	req_handler        fn;
	void              *arg;
	struct peer_policy policy;
	int                nworkers;
	struct req_worker  w[REQ_WORKERS_MAX];
};

static bool
accepted(const struct req_server *s, enum msg_type t)
{
	for (int i = 0; s->accept[i] != MSG_NONE; i++) {
		if (s->accept[i] == t) {
			return true;
		}
	}
	return false;
}

/* Turn one request message into one reply string. */
static char *
serve_one(struct req_server *s, nng_msg *m)
{
	union msg_any *req, *rep;
	enum msg_type  rt = MSG_NONE, pt = MSG_NONE;
	char           err[REASON_LEN] = "";
	uid_t          uid = endpoint_msg_uid(m);
	char          *out = NULL;

	/* heap, not stack: wiped and freed on every path */
	req = calloc(1, sizeof(*req));
	rep = calloc(1, sizeof(*rep));
	if (req == NULL || rep == NULL) {
		snprintf(err, sizeof(err), "out of memory");
	} else if (msg_decode(nng_msg_body(m), nng_msg_len(m), MSG_NONE, &rt,
	                      req, err, sizeof(err)) < 0) {
		log_warnx("%s: request from uid %d rejected: %s", s->name,
		          (int) uid, err);
	} else if (!accepted(s, rt)) {
		snprintf(err, sizeof(err), "%s does not serve %s", s->name,
		         msg_type_name(rt));
		log_warnx("%s: request from uid %d rejected: %s", s->name,
		          (int) uid, err);
	} else if (s->fn(s->arg, rt, req, uid, &pt, rep, err, sizeof(err)) ==
	           0) {
		out = msg_encode(pt, rep);
		if (out == NULL) {
			snprintf(err, sizeof(err), "cannot encode %s",
			         msg_type_name(pt));
		}
	}
	if (out == NULL) {
		struct error_rep e;
		memset(&e, 0, sizeof(e));
		snprintf(e.reason, sizeof(e.reason), "%s",
		         err[0] ? err : "request failed");
		out = msg_encode(MSG_ERROR_REP, &e);
	}
	if (req != NULL) {
		explicit_bzero(req, sizeof(*req));
	}
	if (rep != NULL) {
		explicit_bzero(rep, sizeof(*rep));
	}
	free(req);
	free(rep);
	return out;
}

static void *
worker_main(void *arg)
{
	struct req_worker *w = arg;
	struct req_server *s = w->srv;

	for (;;) {
		nng_msg *m, *r;
		char    *out;
		int      rv;

		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if ((rv = nng_aio_result(w->aio)) != 0) {
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
				break;
			}
			continue;
		}
		m = nng_aio_get_msg(w->aio);
		out = serve_one(s, m);
		endpoint_msg_free_wipe(m);
		if (out == NULL) {
			continue; /* no memory even for an error: drop */
		}
		rv = endpoint_msg_from_string(&r, out, true);
		msg_free_wipe(out);
		if (rv < 0) {
			continue;
		}
		nng_aio_set_msg(w->aio, r);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0) {
			/* not sent: still ours */
			endpoint_msg_free_wipe(r);
		}
	}
	return NULL;
}

int
req_server_open(struct req_server **sp, const char *rundir, const char *name,
                const enum msg_type *accept, int nworkers,
                const struct peer_policy *policy, req_handler fn, void *arg)
{
	struct req_server *s;
	char               url[URL_LEN], sockname[80];
	int                i, rv, n = 0;

	*sp = NULL;
	if (nworkers < 1 || nworkers > REQ_WORKERS_MAX ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		return -1;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	while (accept[n] != MSG_NONE && n < MSG_TYPE_COUNT - 1) {
		s->accept[n] = accept[n];
		n++;
	}
	s->fn = fn;
	s->arg = arg;
	if (policy != NULL) {
		s->policy = *policy;
	} else {
		peer_policy_init(&s->policy);
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		log_warnx("%s: nng_rep0_open: %s", name, nng_strerror(rv));
		free(s);
		return -1;
	}
	(void) nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, MSG_MAX);
	snprintf(sockname, sizeof(sockname), "%s.req", name);
	if (endpoint_url(url, sizeof(url), rundir, sockname) < 0 ||
	    endpoint_listen(s->sock, url, &s->policy) < 0) {
		goto fail;
	}
	for (i = 0; i < nworkers; i++) {
		struct req_worker *w = &s->w[i];
		w->srv = s;
		if (nng_ctx_open(&w->ctx, s->sock) != 0 ||
		    nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			log_warnx("%s: cannot start worker %d", name, i);
			if (w->aio != NULL) {
				nng_aio_free(w->aio);
			}
			break;
		}
		s->nworkers++;
	}
	if (s->nworkers == 0) {
		goto fail;
	}
	*sp = s;
	return 0;
fail:
	nng_close(s->sock);
	free(s);
	return -1;
}

void
req_server_close(struct req_server *s)
{
	if (s == NULL) {
		return;
	}
	/* Stop the workers before the socket goes: closing the socket while
	 * a worker is inside nng_ctx_send (its reply already delivered, the
	 * aio not yet completed) makes NNG 1.5.2 lock a destroyed mutex and
	 * panic. A stopped aio fails every later operation with
	 * NNG_ECANCELED, so each worker leaves its loop. */
	for (int i = 0; i < s->nworkers; i++) {
		nng_aio_stop(s->w[i].aio);
	}
	for (int i = 0; i < s->nworkers; i++) {
		pthread_join(s->w[i].thread, NULL);
		nng_ctx_close(s->w[i].ctx);
		nng_aio_free(s->w[i].aio);
	}
	nng_close(s->sock);
	free(s);
}

/* ---- client ---- */

/* The one reply type each request type expects (besides Error). */
static enum msg_type
reply_type_for(enum msg_type req)
{
	switch (req) {
	case MSG_KEY_RELEASE_REQ:
		return MSG_KEY_RELEASE_REP;
	case MSG_GUARDIAN_REQ:
		return MSG_GUARDIAN_REP;
	case MSG_KEY_ADMIN_REQ:
		return MSG_KEY_ADMIN_REP;
	case MSG_ATTEST_REQ:
		return MSG_ATTEST_REP;
	default:
		return MSG_NONE;
	}
}

struct req_client {
	nng_socket sock;
	char       name[64];
	bool       dialed;
	char       url[URL_LEN];
};

int
req_client_open(struct req_client **cp, const char *rundir, const char *name)
{
	struct req_client *c;
	char               sockname[80];

	*cp = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return -1;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(sockname, sizeof(sockname), "%s.req", name);
	if (endpoint_url(c->url, sizeof(c->url), rundir, sockname) < 0 ||
	    nng_req0_open(&c->sock) != 0) {
		free(c);
		return -1;
	}
	(void) nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, MSG_MAX);
	if (endpoint_dial(c->sock, c->url) < 0) {
		nng_close(c->sock);
		free(c);
		return -1;
	}
	*cp = c;
	return 0;
}

void
req_client_close(struct req_client *c)
{
	if (c != NULL) {
		nng_close(c->sock);
		free(c);
	}
}

int
req_client_call(struct req_client *c, enum msg_type req_type, const void *req,
                enum msg_type *rep_type, void *rep, int timeout_ms, char *err,
                size_t errlen)
{
	const struct schema *rs = msg_schema(req_type);
	nng_msg             *m, *r = NULL;
	char                *out;
	uint64_t             end = now_ms() + (uint64_t) timeout_ms;
	nng_ctx              ctx;
	nng_aio             *aio;
	int                  rv, rc = -1;
	union msg_any       *tmp;

	if (rs == NULL || (out = msg_encode(req_type, req)) == NULL) {
		snprintf(err, errlen, "cannot encode %s",
		         msg_type_name(req_type));
		return -1;
	}
	rv = endpoint_msg_from_string(&m, out, false);
	msg_free_wipe(out);
	if (rv < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* a context per call: concurrent callers each get their own reply */
	if (nng_ctx_open(&ctx, c->sock) != 0 ||
	    nng_aio_alloc(&aio, NULL, NULL) != 0) {
		nng_msg_free(m);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(m);
		snprintf(err, errlen, "%s: send: %s (is the service running?)",
		         c->name, nng_strerror(rv));
		goto out;
	}
	{
		uint64_t now = now_ms();
		int      left = now < end ? (int) (end - now) : 1;
		nng_aio_set_timeout(aio, left);
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		snprintf(err, errlen, "%s: no reply: %s", c->name,
		         nng_strerror(rv));
		goto out;
	}
	r = nng_aio_get_msg(aio);
	if ((tmp = calloc(1, sizeof(*tmp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (msg_decode(nng_msg_body(r), nng_msg_len(r), MSG_NONE, rep_type, tmp,
	               err, errlen) < 0) {
		log_warnx("%s: bad reply: %s", c->name, err);
	} else if (*rep_type == MSG_ERROR_REP) {
		snprintf(err, errlen, "%s: %s", c->name, tmp->err.reason);
	} else if (*rep_type != reply_type_for(req_type)) {
		/* rep is sized for the expected reply only */
		snprintf(err, errlen, "%s: unexpected reply %s to %s", c->name,
		         msg_type_name(*rep_type), msg_type_name(req_type));
	} else {
		memcpy(rep, tmp, msg_schema(*rep_type)->size);
		rc = 0;
	}
	explicit_bzero(tmp, sizeof(*tmp));
	free(tmp);
out:
	endpoint_msg_free_wipe(r);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return rc;
}

int
req_call(const char *rundir, const char *name, enum msg_type req_type,
         const void *req, enum msg_type *rep_type, void *rep, int timeout_ms,
         char *err, size_t errlen)
{
	struct req_client *c;
	int                rc;

	if (req_client_open(&c, rundir, name) < 0) {
		snprintf(err, errlen, "%s: cannot open a client socket", name);
		return -1;
	}
	rc = req_client_call(c, req_type, req, rep_type, rep, timeout_ms, err,
	                     errlen);
	req_client_close(c);
	return rc;
}
