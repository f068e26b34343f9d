/* main.c: vtpm-eve-api: options -> check (-n) -> open -> run -> close. */
#include "evecompat.h"

#include "common.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAX_ALLOW 8

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vtpm-eve-api [--root DIR] [--socket PATH] "
	    "[--allow-uid UID]...\n"
	    "                    [--answer-timeout MS] [--max-vms N] "
	    "[--model tis|crb]\n"
	    "EVE-OS's vTPM control API (GET /launch, /terminate, /purge "
	    "?id=UUID over\nHTTP on a unix socket) in front of the "
	    "launcher, guardian and key broker.\nIt publishes DomainStatus: "
	    "run it instead of domainmgr, not beside it.\n\n"
	    "  --socket PATH        API socket (default "
	    "<root>/run/swtpm/vtpmd.ctrl.sock);\n"
	    "                       <uuid>.ctrl.sock and <uuid>.pid "
	    "are linked beside it\n"
	    "  --allow-uid UID      a further peer uid (root and our own "
	    "are always allowed;\n"
	    "                       repeatable, up to %d)\n"
	    "  --answer-timeout MS  answer 424 when the outcome is not "
	    "known by then\n"
	    "                       (default 4500: EVE's client gives up "
	    "after 5 s)\n"
	    "  --max-vms N          429 for a launch beyond N running "
	    "vTPMs (default 0: no limit)\n"
	    "  --model tis|crb      vTPM device the VMs get (default tis, "
	    "what EVE's QEMU\n"
	    "                       configuration uses on x86)\n"
	    "  --adopt-wait MS      at start, wait this long for the "
	    "launcher's view to\n"
	    "                       take over running vTPMs (default "
	    "2000)\n\n",
	    MAX_ALLOW);
	common_usage(f);
}

static int
run(struct eve *e)
{
	sigset_t set;
	int      sfd, fds[2];

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if ((sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		log_warn("signalfd");
		return -1;
	}
	eve_fds(e, fds);
	for (;;) {
		struct pollfd           pf[3];
		struct signalfd_siginfo si;
		int                     t = eve_step(e);

		pf[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pf[1] = (struct pollfd){.fd = fds[0], .events = POLLIN};
		pf[2] = (struct pollfd){.fd = fds[1], .events = POLLIN};
		if (poll(pf, 3, t < 0 || t > 1000 ? 1000 : t) < 0 &&
		    errno != EINTR) {
			log_warn("poll");
			break;
		}
		if (read(sfd, &si, sizeof(si)) == sizeof(si) &&
		    si.ssi_signo != SIGHUP) {
			log_info("signal %d: stopping", (int) si.ssi_signo);
			break;
		}
	}
	close(sfd);
	return 0;
}

int
main(int argc, char **argv)
{
	enum { O_SOCK = 256, O_ALLOW, O_TIMEOUT, O_MAX, O_MODEL, O_ADOPT };
	static const struct option longopts[] = {
	    COMMON_LONGOPTS,
	    {"socket", required_argument, NULL, O_SOCK},
	    {"allow-uid", required_argument, NULL, O_ALLOW},
	    {"answer-timeout", required_argument, NULL, O_TIMEOUT},
	    {"max-vms", required_argument, NULL, O_MAX},
	    {"model", required_argument, NULL, O_MODEL},
	    {"adopt-wait", required_argument, NULL, O_ADOPT},
	    {NULL, 0, NULL, 0}};
	struct common_opts co;
	struct eve_cfg     cfg;
	struct eve        *e = NULL;
	struct eve_http   *h = NULL;
	const char        *sock = NULL;
	char               sockbuf[PATH_LEN], err[512];
	uid_t              allow[MAX_ALLOW];
	int                nallow = 0, c, v, adopt_ms = 2000, rc = 1;
	sigset_t           set;

	common_opts_init(&co);
	memset(&cfg, 0, sizeof(cfg));
	cfg.answer_ms = 4500;
	cfg.model = VTPM_MODEL_TIS;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS, longopts,
	                        NULL)) != -1) {
		if (common_opts_handle(&co, c, optarg, "vtpm-eve-api", usage)) {
			continue;
		}
		switch (c) {
		case O_SOCK:
			sock = optarg;
			break;
		case O_ALLOW:
			if (nallow == MAX_ALLOW ||
			    opt_int(optarg, 0, 0x7fffffff, &v) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --allow-uid %s: %s\n",
				        optarg,
				        nallow == MAX_ALLOW ? "too many"
				                            : "not a uid");
				return 2;
			}
			allow[nallow++] = (uid_t) v;
			break;
		case O_TIMEOUT:
			if (opt_int(optarg, 100, 60000, &v) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --answer-timeout "
				        "%s: 100-60000 ms\n",
				        optarg);
				return 2;
			}
			cfg.answer_ms = (unsigned) v;
			break;
		case O_MAX:
			if (opt_int(optarg, 0, 1000000, &cfg.max_vms) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --max-vms %s: "
				        "0-1000000\n",
				        optarg);
				return 2;
			}
			break;
		case O_MODEL:
			if (strcmp(optarg, "tis") != 0 &&
			    strcmp(optarg, "crb") != 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --model %s: tis "
				        "or crb\n",
				        optarg);
				return 2;
			}
			cfg.model =
			    optarg[0] == 'c' ? VTPM_MODEL_CRB : VTPM_MODEL_TIS;
			break;
		case O_ADOPT:
			if (opt_int(optarg, 0, 60000, &adopt_ms) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --adopt-wait %s: "
				        "0-60000 ms\n",
				        optarg);
				return 2;
			}
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vtpm-eve-api: unexpected argument %s\n",
		        argv[optind]);
		return 2;
	}
	if (common_opts_finish(&co, "vtpm-eve-api") < 0) {
		return 1;
	}
	snprintf(cfg.rundir, sizeof(cfg.rundir), "%s", co.paths.run);
	if (path_join(cfg.everun, sizeof(cfg.everun), "%s/run/swtpm",
	              co.paths.root) < 0 ||
	    path_join(sockbuf, sizeof(sockbuf), "%s/vtpmd.ctrl.sock",
	              cfg.everun) < 0) {
		return 1;
	}
	if (sock == NULL) {
		sock = sockbuf;
	}
	if (co.checkonly) {
		log_info("socket %s, links in %s, answer within %u ms, %s",
		         sock, cfg.everun, cfg.answer_ms,
		         cfg.max_vms ? "with a VM limit" : "no VM limit");
		return 0;
	}
	/* before any thread: NNG's and libmicrohttpd's threads inherit the
	 * mask, so the signals reach only run()'s signalfd */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		log_warnx("cannot block signals");
		return 1;
	}
	if (eve_open(&e, &cfg, (unsigned) adopt_ms, err, sizeof(err)) < 0 ||
	    eve_http_open(&h, e, sock, allow, nallow, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto out;
	}
	log_info("serving EVE's vTPM API on %s (answers within %u ms, %s)",
	         sock, cfg.answer_ms,
	         cfg.max_vms ? "VM limit set" : "no VM limit");
	rc = run(e) == 0 ? 0 : 1;
out:
	eve_http_close(h);
	eve_close(e);
	return rc;
}
