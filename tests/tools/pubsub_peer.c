/*
 * pubsub_peer: a stand-alone peer for the pubsub integration tests.
 *   pub   --run DIR --items N [--first I] [--name S] [--perms MODE]
 *         publish N VtpmStatus items and serve until SIGTERM
 *   sub   --run DIR --dump FILE
 *         follow VtpmStatus; rewrite FILE ("key name state" lines, sorted)
 *         each time the view changes, until SIGTERM
 *   serve --run DIR [--perms MODE] [--allow-uid UID]
 *         answer GuardianRequest on service "guardian" until SIGTERM
 *   call  --run DIR [--timeout MS]
 *         send one GuardianRequest; exit 0 on a reply, 1 otherwise
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: pubsub_peer pub|sub|serve|call --run DIR [--items N]"
	           " [--first I] [--name S] [--dump FILE] [--perms MODE]"
	           " [--allow-uid UID] [--timeout MS]\n");
}

struct dump_ctx {
	struct topic_sub *sub;
	const char       *path;
	bool              dirty;
};

static void
dump_line(void *arg, const char *key, const void *item)
{
	const struct vtpm_status *v = item;

	fprintf(arg, "%s %s %s\n", key, v->name, vtpm_state_name(v->state));
}

static void
dirty(void *arg, const char *key, const void *item)
{
	(void) key;
	(void) item;
	((struct dump_ctx *) arg)->dirty = true;
}

static void
dirty_del(void *arg, const char *key)
{
	(void) key;
	((struct dump_ctx *) arg)->dirty = true;
}

static void
synced(void *arg)
{
	((struct dump_ctx *) arg)->dirty = true;
}

static int
write_dump(struct dump_ctx *c)
{
	char  *buf = NULL;
	size_t len = 0;
	FILE  *f = open_memstream(&buf, &len);
	int    rc;

	if (f == NULL) {
		return -1;
	}
	topic_sub_foreach(c->sub, dump_line, f);
	fclose(f);
	rc = durable_write(c->path, buf, len, 0644);
	free(buf);
	return rc;
}

static int
guardian_ok(void *arg, enum msg_type t, const void *req, uid_t uid,
            enum msg_type *rt, void *rep, char *err, size_t errlen)
{
	const struct guardian_req *g = req;
	struct guardian_rep       *r = rep;

	(void) arg;
	(void) t;
	(void) err;
	(void) errlen;
	log_info("request %s %s from uid %d", guardian_op_name(g->op), g->uuid,
	         (int) uid);
	*rt = MSG_GUARDIAN_REP;
	snprintf(r->uuid, sizeof(r->uuid), "%s", g->uuid);
	r->ok = true;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"items", required_argument, NULL, 'i'},
	    {"first", required_argument, NULL, 'f'},
	    {"name", required_argument, NULL, 'n'},
	    {"dump", required_argument, NULL, 'd'},
	    {"perms", required_argument, NULL, 'p'},
	    {"allow-uid", required_argument, NULL, 'u'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char        *run = NULL, *name = "item", *dump = NULL, *mode;
	int                items = 0, first = 0, timeout = 2000, c, rc = 0;
	struct peer_policy pol;

	peer_policy_init(&pol);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run = optarg;
			break;
		case 'i':
			items = atoi(optarg);
			break;
		case 'f':
			first = atoi(optarg);
			break;
		case 'n':
			name = optarg;
			break;
		case 'd':
			dump = optarg;
			break;
		case 'p':
			pol.perms = (unsigned) strtoul(optarg, NULL, 8);
			break;
		case 'u':
			peer_policy_add(&pol, (uid_t) atoi(optarg));
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
	if (run == NULL) {
		usage(stderr);
		return 2;
	}
	log_procinit("pubsub_peer");
	log_init(LOG_LVL_INFO, 0);
	signals_catch_quit();

	if (strcmp(mode, "pub") == 0) {
		struct topic_pub *p;
		if (topic_pub_open(&p, run, MSG_VTPM_STATUS, &pol) < 0) {
			return 1;
		}
		for (int i = first; i < first + items; i++) {
			struct vtpm_status v;
			memset(&v, 0, sizeof(v));
			snprintf(v.uuid, sizeof(v.uuid),
			         "00000000-0000-0000-0000-%012d", i);
			snprintf(v.name, sizeof(v.name), "%s", name);
			v.state = VTPM_READY;
			topic_pub_set(p, v.uuid, &v);
		}
		log_info("published %d items", items);
		while (!sig_quit) {
			pause();
		}
		topic_pub_close(p);
	} else if (strcmp(mode, "sub") == 0 && dump != NULL) {
		struct dump_ctx           ctx = {.path = dump};
		const struct topic_sub_cb cb = {dirty, dirty_del, synced};
		if (topic_sub_open(&ctx.sub, run, MSG_VTPM_STATUS, &cb, &ctx) <
		    0) {
			return 1;
		}
		while (!sig_quit) {
			int           t = topic_sub_process(ctx.sub);
			struct pollfd pfd = {topic_sub_fd(ctx.sub), POLLIN, 0};
			if (ctx.dirty) {
				ctx.dirty = false;
				write_dump(&ctx);
			}
			poll(&pfd, 1, t > 100 ? 100 : t);
		}
		topic_sub_close(ctx.sub);
	} else if (strcmp(mode, "serve") == 0) {
		static const enum msg_type acc[] = {MSG_GUARDIAN_REQ, MSG_NONE};
		struct req_server         *s;
		if (req_server_open(&s, run, "guardian", acc, 2, &pol,
		                    guardian_ok, NULL) < 0) {
			return 1;
		}
		while (!sig_quit) {
			pause();
		}
		req_server_close(s);
	} else if (strcmp(mode, "call") == 0) {
		struct guardian_req q;
		struct guardian_rep r;
		enum msg_type       rt;
		char                err[REASON_LEN];
		memset(&q, 0, sizeof(q));
		q.op = GOP_QUERY;
		snprintf(q.uuid, sizeof(q.uuid), "%s",
		         "00000000-0000-0000-0000-000000000001");
		if (req_call(run, "guardian", MSG_GUARDIAN_REQ, &q, &rt, &r,
		             timeout, err, sizeof(err)) < 0) {
			log_warnx("call: %s", err);
			rc = 1;
		}
	} else {
		usage(stderr);
		return 2;
	}
	return rc;
}
