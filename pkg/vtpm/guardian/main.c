/* main.c: vtpm-guardian wiring: options, config check (-n), start (state
 * directories, inotify, request server and topic), event loop, orderly
 * shutdown. */
#include "common.h"
#include "guardian.h"
#include "log.h"
#include "pubsub.h"

#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vtpm-guardian [--root DIR] [--swtpm-user USER]\n"
	    "Owns <root>/persist/swtpm: creates, verifies, backs up, restores\n"
	    "and purges each VM's swtpm state; serves GuardianRequest on\n"
	    "<root>/run/vtpm/guardian.req, publishes VtpmStateHealth.\n"
	    "  -u, --swtpm-user USER  owner of the state directories (default\n"
	    "                         tss; ignored with a warning when not "
	    "root)\n"
	    "  -c, --commit-interval MS  least time between two commits of "
	    "one\n"
	    "                         VM's state during a burst of writes\n"
	    "                         (default 20; 0: every generation)\n");
	common_usage(f);
}

/* What the command line and the system say. */
struct gd_opts {
	struct common_opts co;
	const char        *user; /* --swtpm-user, NULL: tss */
	int                commit_ms;
	uid_t              uid; /* owner of the state directories */
	gid_t              gid;
	bool               do_chown;
};

/* -1: go on; otherwise the exit status (--help, a bad option). */
static int
parse_options(int argc, char **argv, struct gd_opts *op)
{
	static const struct option opts[] = {
	    COMMON_LONGOPTS,
	    {"swtpm-user", required_argument, NULL, 'u'},
	    {"commit-interval", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0}};
	int c, r;

	memset(op, 0, sizeof(*op));
	common_opts_init(&op->co);
	op->commit_ms = GD_COMMIT_MS;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "u:c:", opts,
	                        NULL)) != -1) {
		if ((r = common_opts_handle(&op->co, c, optarg, "vtpm-guardian",
		                            usage)) != 0) {
			if (r < 0) {
				return op->co.exit_status;
			}
			continue;
		}
		if (c == 'u') {
			op->user = optarg;
			continue;
		}
		if (c == 'c') {
			if (opt_int(optarg, 0, 10000, &op->commit_ms) < 0) {
				fprintf(
				    stderr,
				    "vtpm-guardian: --commit-interval %s: want "
				    "0..10000 ms\n",
				    optarg);
				return 2;
			}
			continue;
		}
		usage(stderr);
		return 2;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Logging, directories, the swtpm user. 0 or -1 (logged). */
static int
check_config(struct gd_opts *op)
{
	op->uid = geteuid();
	op->gid = getegid();
	if (common_opts_finish(&op->co, "guardian") < 0) {
		fprintf(stderr, "vtpm-guardian: cannot set up %s\n",
		        op->co.paths.run);
		return -1;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(op->user ? op->user : "tss");
		if (pw == NULL) {
			log_warnx("swtpm user %s does not exist",
			          op->user ? op->user : "tss");
			return -1;
		}
		op->uid = pw->pw_uid;
		op->gid = pw->pw_gid;
		op->do_chown = op->uid != 0;
	} else if (op->user != NULL) {
		log_warnx(
		    "--swtpm-user %s ignored: not root, state directories "
		    "stay ours (uid %d)",
		    op->user, (int) op->uid);
	}
	return 0;
}

/* State directories, inotify, the service and topic; then every
 * manifest. 0 or -1 (logged, nothing left open). */
static int
start(struct guardian *g, const struct gd_opts *op, struct req_server **srv)
{
	if (gd_init(g, op->co.paths.root, op->uid, op->gid, op->do_chown) < 0) {
		log_warnx("cannot set up state directories under %s",
		          op->co.paths.state);
		return -1;
	}
	g->commit_ms = (unsigned) op->commit_ms;
	if (gd_watch_open(g) < 0 || gd_serve_open(g, srv) < 0) {
		gd_fini(g);
		return -1;
	}

	signals_catch_quit();

	pthread_mutex_lock(&g->lock);
	gd_load_all(g);
	pthread_mutex_unlock(&g->lock);
	log_info("serving %s/guardian.req, state in %s (swtpm uid %d)",
	         g->paths.run, g->paths.state, (int) op->uid);
	return 0;
}

/* Until SIGTERM/SIGINT: commit what is due, act on inotify events. */
static void
run(struct guardian *g)
{
	while (!sig_quit) {
		struct pollfd pfd = {.fd = g->ifd, .events = POLLIN};
		int           due, n;
		/* commit what is due; sleep until the next one is */
		pthread_mutex_lock(&g->lock);
		due = gd_flush_due(g);
		pthread_mutex_unlock(&g->lock);
		n = poll(&pfd, 1, due >= 0 && due < 250 ? due : 250);
		if (n > 0 && (pfd.revents & POLLIN)) {
			pthread_mutex_lock(&g->lock);
			gd_watch_process(g);
			pthread_mutex_unlock(&g->lock);
		}
		gd_tick(g);
	}
}

static void
stop(struct guardian *g, struct req_server *srv)
{
	log_info("stopping: committing watched state");
	req_server_close(srv);
	pthread_mutex_lock(&g->lock);
	gd_rescan(g, false);
	pthread_mutex_unlock(&g->lock);
	gd_publish_close(g);
	gd_fini(g);
}

int
main(int argc, char **argv)
{
	struct gd_opts     op;
	struct guardian    g;
	struct req_server *srv = NULL;
	int                rc;

	if ((rc = parse_options(argc, argv, &op)) >= 0) {
		return rc;
	}
	if (check_config(&op) < 0) {
		return 1;
	}
	if (op.co.checkonly) {
		return 0;
	}
	if (start(&g, &op, &srv) < 0) {
		return 1;
	}
	run(&g);
	stop(&g, srv);
	return 0;
}
