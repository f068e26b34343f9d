/*
 * vtpm-launcher: one swtpm per VM that boots with a vTPM.
 * main() only wires: options, config check (-n), start, the loop,
 * shutdown.
 */
#include "launcher.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "LO-HI" */
static int
uid_range(const char *s, uid_t *lo, uid_t *hi)
{
	char     *end;
	long long a, b;

	errno = 0;
	a = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '-') {
		return -1;
	}
	s = end + 1;
	b = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || a < 1 || b < a ||
	    b > 0x7fffffff) {
		return -1;
	}
	*lo = (uid_t) a;
	*hi = (uid_t) b;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vtpm-launcher [--root DIR] [--swtpm-user USER] "
	    "[--max-parallel N]\n"
	    "         [--no-guardian] [--no-keybroker] [--swtpm PATH] "
	    "[--stop-on-exit]\n"
	    "         [--stop-timeout MS] [--start-timeout MS]\n"
	    "         [--no-sandbox] [--uid-range LO-HI] [--rlimit-nofile N]\n"
	    "         [--rlimit-as MB] [--rlimit-core MB]\n"
	    "Follows DomainStatus, runs a health-checked swtpm per booting "
	    "VM,\n"
	    "publishes VtpmStatus. SIGTERM/SIGINT exit and leave every swtpm\n"
	    "running for the next launcher to adopt (unless --stop-on-exit).\n"
	    "Options:\n"
	    "  --uid-range LO-HI  one uid (and gid) per VM's swtpm from this\n"
	    "                     range (default 200000-265535)\n"
	    "  --no-sandbox       no namespaces, no per-VM uid: swtpm runs as\n"
	    "                     --swtpm-user (for machines without\n"
	    "                     namespaces, and as a baseline)\n"
	    "  --swtpm-user USER  uid swtpm runs as with --no-sandbox when "
	    "root\n"
	    "                     (default tss)\n"
	    "  --rlimit-nofile N  swtpm's open files (default 64)\n"
	    "  --rlimit-as MB     swtpm's address space (default 1024, 0 no "
	    "limit)\n"
	    "  --rlimit-core MB   swtpm's core dumps (default 0: none)\n"
	    "  --max-parallel N   worker threads: concurrent starts/stops\n"
	    "                     (default 16, at most 256)\n"
	    "  --no-guardian      plain state directories made here\n"
	    "  --no-keybroker     no state key: unencrypted state\n"
	    "  --swtpm PATH       swtpm binary (default /usr/bin/swtpm)\n"
	    "  --stop-on-exit     stop every swtpm when the launcher exits\n"
	    "  --stop-timeout MS  CMD_SHUTDOWN to SIGTERM (default 3000)\n"
	    "  --start-timeout MS spawn to CMD_INIT answered (default "
	    "10000)\n");
	common_usage(f);
}

static const struct option lo[] = {
    COMMON_LONGOPTS,
    {"swtpm-user", required_argument, NULL, 'u'},
    {"max-parallel", required_argument, NULL, 'm'},
    {"no-guardian", no_argument, NULL, 'G'},
    {"no-keybroker", no_argument, NULL, 'K'},
    {"swtpm", required_argument, NULL, 's'},
    {"stop-on-exit", no_argument, NULL, 'X'},
    {"stop-timeout", required_argument, NULL, 'T'},
    {"start-timeout", required_argument, NULL, 'I'},
    {"no-sandbox", no_argument, NULL, 'N'},
    {"uid-range", required_argument, NULL, 'U'},
    {"rlimit-nofile", required_argument, NULL, 'F'},
    {"rlimit-as", required_argument, NULL, 'A'},
    {"rlimit-core", required_argument, NULL, 'C'},
    {NULL, 0, NULL, 0}};

/* -1: go on; otherwise the exit status (--help, a bad option). */
static int
parse_options(int argc, char **argv, struct common_opts *co,
              struct launcher_cfg *cfg)
{
	int c, r;

	common_opts_init(co);
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->swtpm, sizeof(cfg->swtpm), "/usr/bin/swtpm");
	snprintf(cfg->swtpm_user, sizeof(cfg->swtpm_user), "tss");
	cfg->max_parallel = 16;
	cfg->stop_timeout_ms = 3000;
	cfg->start_timeout_ms = 10000;
	cfg->req_timeout_ms = 10000;
	cfg->sandbox = true;
	cfg->uid_lo = 200000;
	cfg->uid_hi = 265535;
	cfg->rlim_nofile = 64;
	cfg->rlim_as_mb = 1024;
	cfg->rlim_core_mb = 0;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS, lo, NULL)) !=
	       -1) {
		if ((r = common_opts_handle(co, c, optarg, "vtpm-launcher",
		                            usage)) != 0) {
			if (r < 0) {
				return co->exit_status;
			}
			continue;
		}
		switch (c) {
		case 'u':
			snprintf(cfg->swtpm_user, sizeof(cfg->swtpm_user), "%s",
			         optarg);
			break;
		case 'm':
			if (opt_int(optarg, 1, 256, &cfg->max_parallel) < 0) {
				fprintf(stderr,
				        "vtpm-launcher: --max-parallel "
				        "%s: want 1..256\n",
				        optarg);
				return 2;
			}
			break;
		case 'G':
			cfg->no_guardian = true;
			break;
		case 'K':
			cfg->no_keybroker = true;
			break;
		case 's':
			snprintf(cfg->swtpm, sizeof(cfg->swtpm), "%s", optarg);
			break;
		case 'X':
			cfg->stop_on_exit = true;
			break;
		case 'T':
		case 'I':
			if (opt_int(optarg, 10, 600000,
			            c == 'T' ? &cfg->stop_timeout_ms
			                     : &cfg->start_timeout_ms) < 0) {
				fprintf(stderr,
				        "vtpm-launcher: bad timeout "
				        "%s: want 10..600000 ms\n",
				        optarg);
				return 2;
			}
			break;
		case 'N':
			cfg->sandbox = false;
			break;
		case 'U':
			if (uid_range(optarg, &cfg->uid_lo, &cfg->uid_hi) < 0) {
				fprintf(stderr,
				        "vtpm-launcher: --uid-range %s: want "
				        "LO-HI, 1 <= LO <= HI < 2^31\n",
				        optarg);
				return 2;
			}
			break;
		case 'F':
		case 'A':
		case 'C':
			if (opt_int(optarg, c == 'F' ? 16 : 0,
			            c == 'F' ? 65536 : 1 << 20,
			            c == 'F'   ? &cfg->rlim_nofile
			            : c == 'A' ? &cfg->rlim_as_mb
			                       : &cfg->rlim_core_mb) < 0) {
				fprintf(
				    stderr,
				    "vtpm-launcher: --rlimit-%s %s: want %s\n",
				    c == 'F'   ? "nofile"
				    : c == 'A' ? "as"
				               : "core",
				    optarg,
				    c == 'F' ? "16..65536" : "0..1048576 (MB)");
				return 2;
			}
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Logging, directories, the swtpm binary and user. 0 or -1 (logged). */
static int
check_config(struct common_opts *co, struct launcher_cfg *cfg)
{
	struct passwd *pw;

	if (common_opts_finish(co, "launcher") < 0) {
		return -1;
	}
	cfg->paths = co->paths;
	if (path_join(cfg->swtpm_dir, sizeof(cfg->swtpm_dir), "%s/swtpm",
	              cfg->paths.run) < 0) {
		return -1;
	}
	if (access(cfg->swtpm, X_OK) < 0) {
		log_warn("swtpm binary %s", cfg->swtpm);
		return -1;
	}
	if (cfg->sandbox) {
		/* per-VM uids (sandbox.c); --swtpm-user is not used */
	} else if (geteuid() == 0) {
		if ((pw = getpwnam(cfg->swtpm_user)) == NULL) {
			log_warnx("--swtpm-user %s: no such user",
			          cfg->swtpm_user);
			return -1;
		}
		cfg->runas = pw->pw_uid != 0;
		cfg->swtpm_uid = pw->pw_uid;
		cfg->swtpm_gid = pw->pw_gid;
	} else {
		log_warnx("not root: swtpm runs as uid %d (--swtpm-user %s "
		          "ignored)",
		          (int) geteuid(), cfg->swtpm_user);
	}
	/* -n: also what the sandbox needs (a start checks it when it opens) */
	if (co->checkonly && sbx_check(cfg) < 0) {
		return -1;
	}
	return 0;
}

static int
start(struct launcher **l, struct launcher_cfg *cfg)
{
	signals_catch_quit();

	if (launcher_open(l, cfg) < 0) {
		log_warnx("cannot start");
		return -1;
	}
	log_info("started: run %s, swtpm %s%s%s%s, max %d in parallel%s%s",
	         cfg->paths.run, cfg->swtpm, cfg->runas ? " as " : "",
	         cfg->runas ? cfg->swtpm_user : "",
	         cfg->sandbox ? " sandboxed (a uid per VM)" : " not sandboxed",
	         cfg->max_parallel, cfg->no_guardian ? ", no guardian" : "",
	         cfg->no_keybroker ? ", no key broker" : "");
	return 0;
}

int
main(int argc, char **argv)
{
	struct common_opts  co;
	struct launcher_cfg cfg;
	struct launcher    *l;
	int                 rc;

	/* tpm2-tss would print expected errors (no EK yet); we report
	 * TPM errors ourselves */
	setenv("TSS2_LOG", "all+none", 0);
	if ((rc = parse_options(argc, argv, &co, &cfg)) >= 0) {
		return rc;
	}
	if (check_config(&co, &cfg) < 0) {
		return 1;
	}
	if (co.checkonly) {
		return 0;
	}
	if (start(&l, &cfg) < 0) {
		return 1;
	}
	launcher_run(l, &sig_quit);
	launcher_close(l);
	return 0;
}
