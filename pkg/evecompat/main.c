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

struct eve_main_opts {
	struct common_opts co;
	struct eve_cfg     cfg;
	const char        *sock; /* NULL: <root>/run/swtpm/vtpmd.ctrl.sock */
	char               sockbuf[PATH_LEN];
	uid_t              allow[MAX_ALLOW];
	int                nallow;
	int                adopt_ms;
};

/* -1: go on; otherwise the exit status (--help, a bad option). */
static int
parse_options(int argc, char **argv, struct eve_main_opts *op)
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
	int c, v, r;

	memset(op, 0, sizeof(*op));
	common_opts_init(&op->co);
	op->cfg.answer_ms = 4500;
	op->cfg.model = VTPM_MODEL_TIS;
	op->adopt_ms = 2000;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS, longopts,
	                        NULL)) != -1) {
		if ((r = common_opts_handle(&op->co, c, optarg, "vtpm-eve-api",
		                            usage)) != 0) {
			if (r < 0) {
				return op->co.exit_status;
			}
			continue;
		}
		switch (c) {
		case O_SOCK:
			op->sock = optarg;
			break;
		case O_ALLOW:
			if (op->nallow == MAX_ALLOW ||
			    opt_int(optarg, 0, 0x7fffffff, &v) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --allow-uid %s: %s\n",
				        optarg,
				        op->nallow == MAX_ALLOW ? "too many"
				                                : "not a uid");
				return 2;
			}
			op->allow[op->nallow++] = (uid_t) v;
			break;
		case O_TIMEOUT:
			if (opt_int(optarg, 100, 60000, &v) < 0) {
				fprintf(stderr,
				        "vtpm-eve-api: --answer-timeout %s: "
				        "100-60000 ms\n",
				        optarg);
				return 2;
			}
			op->cfg.answer_ms = (unsigned) v;
			break;
		case O_MAX:
			if (opt_int(optarg, 0, 1000000, &op->cfg.max_vms) < 0) {
				fprintf(
				    stderr,
				    "vtpm-eve-api: --max-vms %s: 0-1000000\n",
				    optarg);
				return 2;
			}
			break;
		case O_MODEL:
			if (strcmp(optarg, "tis") != 0 &&
			    strcmp(optarg, "crb") != 0) {
				fprintf(
				    stderr,
				    "vtpm-eve-api: --model %s: tis or crb\n",
				    optarg);
				return 2;
			}
			op->cfg.model =
			    optarg[0] == 'c' ? VTPM_MODEL_CRB : VTPM_MODEL_TIS;
			break;
		case O_ADOPT:
			if (opt_int(optarg, 0, 60000, &op->adopt_ms) < 0) {
				fprintf(
				    stderr,
				    "vtpm-eve-api: --adopt-wait %s: 0-60000 "
				    "ms\n",
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
	return -1;
}

/* Logging, directories and the paths. 0, or -1 (logged). */
static int
check_config(struct eve_main_opts *op)
{
	struct eve_cfg *cfg = &op->cfg;

	if (common_opts_finish(&op->co, "vtpm-eve-api") < 0) {
		return -1;
	}
	snprintf(cfg->rundir, sizeof(cfg->rundir), "%s", op->co.paths.run);
	if (path_join(cfg->everun, sizeof(cfg->everun), "%s/run/swtpm",
	              op->co.paths.root) < 0 ||
	    path_join(op->sockbuf, sizeof(op->sockbuf), "%s/vtpmd.ctrl.sock",
	              cfg->everun) < 0) {
		return -1;
	}
	if (op->sock == NULL) {
		op->sock = op->sockbuf;
	}
	if (op->co.checkonly) {
		log_info("socket %s, links in %s, answer within %u ms, %s",
		         op->sock, cfg->everun, cfg->answer_ms,
		         cfg->max_vms ? "with a VM limit" : "no VM limit");
	}
	return 0;
}

/* Open the lifecycle side and the HTTP side. 0, or -1 (logged). */
static int
start(const struct eve_main_opts *op, struct eve **e, struct eve_http **h)
{
	sigset_t set;
	char     err[512];

	/* before any thread: NNG's and libmicrohttpd's threads inherit the
	 * mask, so the signals reach only run()'s signalfd */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		log_warnx("cannot block signals");
		return -1;
	}
	if (eve_open(e, &op->cfg, (unsigned) op->adopt_ms, err, sizeof(err)) <
	        0 ||
	    eve_http_open(h, *e, op->sock, op->allow, op->nallow, err,
	                  sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	log_info("serving EVE's vTPM API on %s (answers within %u ms, %s)",
	         op->sock, op->cfg.answer_ms,
	         op->cfg.max_vms ? "VM limit set" : "no VM limit");
	return 0;
}

int
main(int argc, char **argv)
{
	struct eve_main_opts op;
	struct eve          *e = NULL;
	struct eve_http     *h = NULL;
	int                  rc;

	if ((rc = parse_options(argc, argv, &op)) >= 0) {
		return rc;
	}
	if (check_config(&op) < 0) {
		return 1;
	}
	if (op.co.checkonly) {
		return 0;
	}
	rc = start(&op, &e, &h) == 0 && run(e) == 0 ? 0 : 1;
	eve_http_close(h);
	eve_close(e);
	return rc;
}
