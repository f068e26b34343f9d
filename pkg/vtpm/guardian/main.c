/* main.c: vtpm-guardian wiring: options, logging, state directories,
 * inotify, request server and topic, event loop, orderly shutdown. */
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

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_LONGOPTS,
	    {"swtpm-user", required_argument, NULL, 'u'},
	    {"commit-interval", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0}};
	struct common_opts co;
	struct guardian    g;
	struct req_server *srv = NULL;
	const char        *user = NULL;
	uid_t              uid = geteuid();
	gid_t              gid = getegid();
	bool               do_chown = false;
	int                c;
	int                commit_ms = GD_COMMIT_MS;

	common_opts_init(&co);
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "u:c:", opts,
	                        NULL)) != -1) {
		if (common_opts_handle(&co, c, optarg, "vtpm-guardian",
		                       usage)) {
			continue;
		}
		if (c == 'u') {
			user = optarg;
			continue;
		}
		if (c == 'c') {
			if (opt_int(optarg, 0, 10000, &commit_ms) < 0) {
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
	if (common_opts_finish(&co, "guardian") < 0) {
		fprintf(stderr, "vtpm-guardian: cannot set up %s\n",
		        co.paths.run);
		return 1;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(user ? user : "tss");
		if (pw == NULL) {
			log_warnx("swtpm user %s does not exist",
			          user ? user : "tss");
			return 1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		do_chown = uid != 0;
	} else if (user != NULL) {
		log_warnx(
		    "--swtpm-user %s ignored: not root, state directories "
		    "stay ours (uid %d)",
		    user, (int) uid);
	}
	if (co.checkonly) {
		return 0;
	}
	if (gd_init(&g, co.paths.root, uid, gid, do_chown) < 0) {
		log_warnx("cannot set up state directories under %s",
		          co.paths.state);
		return 1;
	}
	g.commit_ms = (unsigned) commit_ms;
	if (gd_watch_open(&g) < 0 || gd_serve_open(&g, &srv) < 0) {
		gd_fini(&g);
		return 1;
	}

	signals_catch_quit();

	pthread_mutex_lock(&g.lock);
	gd_load_all(&g);
	pthread_mutex_unlock(&g.lock);
	log_info("serving %s/guardian.req, state in %s (swtpm uid %d)",
	         g.paths.run, g.paths.state, (int) uid);

	while (!sig_quit) {
		struct pollfd pfd = {.fd = g.ifd, .events = POLLIN};
		int           due, n;
		/* commit what is due; sleep until the next one is */
		pthread_mutex_lock(&g.lock);
		due = gd_flush_due(&g);
		pthread_mutex_unlock(&g.lock);
		n = poll(&pfd, 1, due >= 0 && due < 250 ? due : 250);
		if (n > 0 && (pfd.revents & POLLIN)) {
			pthread_mutex_lock(&g.lock);
			gd_watch_process(&g);
			pthread_mutex_unlock(&g.lock);
		}
		gd_tick(&g);
	}

	log_info("stopping: committing watched state");
	req_server_close(srv);
	pthread_mutex_lock(&g.lock);
	gd_rescan(&g, false);
	pthread_mutex_unlock(&g.lock);
	gd_publish_close(&g);
	gd_fini(&g);
	return 0;
}
