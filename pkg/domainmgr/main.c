/* main.c: domainmgr wiring: options, config check (-n), start, event
 * loop, orderly shutdown. */
#include "domainmgr.h"

#include "common.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: domainmgr [--root DIR] --config FILE [--qemu --kernel K "
	    "[--initrd I] ...]\n"
	    "Reads the deployment config (reloaded when the file changes and "
	    "on SIGHUP),\npublishes DomainStatus per app and, with --qemu, "
	    "runs one QEMU per app.\n\n"
	    "  -c, --config FILE     deployment config (JSON), required\n"
	    "      --qemu            really start QEMU for running apps\n"
	    "      --qemu-binary B   default qemu-system-x86_64\n"
	    "      --kernel FILE     guest kernel (required with --qemu)\n"
	    "      --initrd FILE     guest initramfs\n"
	    "      --append STRING   kernel command line (default "
	    "\"console=ttyS0\")\n"
	    "      --memory MIB      guest memory (default 256)\n"
	    "      --serial-log TPL  serial console file per VM; %%u uuid, %%n "
	    "name\n"
	    "                        (default <run>/qemu/%%u.log; \"\" = "
	    "none)\n"
	    "      --qemu-arg ARG    extra QEMU argument (repeatable)\n"
	    "      --halt-timeout MS     HALTING waits this long for the "
	    "vTPM (10000)\n"
	    "      --delete-timeout MS   DELETED waits this long for the "
	    "launcher (10000)\n"
	    "      --linger MS           DELETED stays published at least "
	    "(2000)\n"
	    "      --kill-timeout MS     SIGTERM to SIGKILL for QEMU "
	    "(5000)\n\n");
	common_usage(f);
}

/* The command line, and what it leads to. */
struct dm_main_opts {
	struct common_opts    co;
	struct dm_daemon_opts o;
	char                  serial[PATH_LEN + 16]; /* default serial log */
	bool                  serial_set;            /* --serial-log given */
};

enum {
	O_QEMU = 256,
	O_BIN,
	O_KERNEL,
	O_INITRD,
	O_APPEND,
	O_MEM,
	O_SERIAL,
	O_QARG,
	O_HALT,
	O_DEL,
	O_LINGER,
	O_KILL
};
static const struct option longopts[] = {
    COMMON_LONGOPTS,
    {"config", required_argument, NULL, 'c'},
    {"qemu", no_argument, NULL, O_QEMU},
    {"qemu-binary", required_argument, NULL, O_BIN},
    {"kernel", required_argument, NULL, O_KERNEL},
    {"initrd", required_argument, NULL, O_INITRD},
    {"append", required_argument, NULL, O_APPEND},
    {"memory", required_argument, NULL, O_MEM},
    {"serial-log", required_argument, NULL, O_SERIAL},
    {"qemu-arg", required_argument, NULL, O_QARG},
    {"halt-timeout", required_argument, NULL, O_HALT},
    {"delete-timeout", required_argument, NULL, O_DEL},
    {"linger", required_argument, NULL, O_LINGER},
    {"kill-timeout", required_argument, NULL, O_KILL},
    {NULL, 0, NULL, 0}};

/* One domainmgr option c (not a common one) into op: 0, or 2 after a
 * message (bad value, unknown option). */
static int
set_option(struct dm_main_opts *op, int c, const char *arg)
{
	struct dm_daemon_opts *o = &op->o;
	unsigned              *ms = NULL;

	switch (c) {
	case 'c':
		o->config = arg;
		break;
	case O_QEMU:
		o->qemu = true;
		break;
	case O_BIN:
		o->q.binary = arg;
		break;
	case O_KERNEL:
		o->q.kernel = arg;
		break;
	case O_INITRD:
		o->q.initrd = arg;
		break;
	case O_APPEND:
		o->q.append = arg;
		break;
	case O_MEM:
		o->q.memory = arg;
		break;
	case O_SERIAL:
		o->q.serial = arg;
		op->serial_set = true;
		break;
	case O_QARG:
		if (o->q.nextra >=
		    (int) (sizeof(o->q.extra) / sizeof(o->q.extra[0]))) {
			fprintf(stderr, "domainmgr: too many "
			                "--qemu-arg\n");
			return 2;
		}
		o->q.extra[o->q.nextra++] = arg;
		break;
	case O_HALT:
		ms = &o->to.halt_ms;
		break;
	case O_DEL:
		ms = &o->to.delete_ms;
		break;
	case O_LINGER:
		ms = &o->to.linger_ms;
		break;
	case O_KILL:
		ms = &o->to.vm_kill_ms;
		break;
	default:
		usage(stderr);
		return 2;
	}
	if (ms != NULL) {
		int v;

		if (opt_int(arg, 0, 3600000, &v) < 0) {
			fprintf(stderr,
			        "domainmgr: %s: not a number of "
			        "milliseconds (0-3600000)\n",
			        arg);
			return 2;
		}
		*ms = (unsigned) v;
	}
	return 0;
}

/* -1: go on; otherwise the exit status (--help, a bad option). */
static int
parse_options(int argc, char **argv, struct dm_main_opts *op)
{
	static const struct dm_timeouts def = DM_TIMEOUTS_DEFAULT;
	struct common_opts             *co = &op->co;
	struct dm_daemon_opts          *o = &op->o;
	int                             c, r;

	memset(op, 0, sizeof(*op));
	common_opts_init(co);
	o->to = def;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "c:", longopts,
	                        NULL)) != -1) {
		if ((r = common_opts_handle(co, c, optarg, "domainmgr",
		                            usage)) != 0) {
			if (r < 0) {
				return co->exit_status;
			}
			continue;
		}
		if (set_option(op, c, optarg) != 0) {
			return 2;
		}
	}
	if (optind < argc || o->config == NULL) {
		fprintf(stderr, "domainmgr: %s\n",
		        o->config == NULL ? "--config FILE is required"
		                          : "unexpected argument");
		usage(stderr);
		return 2;
	}
	if (o->qemu && (o->q.kernel == NULL || o->q.kernel[0] == '\0')) {
		fprintf(stderr, "domainmgr: --qemu needs --kernel FILE\n");
		return 2;
	}
	return -1;
}

/* Logging, directories; with -n the deployment config itself. 0 or -1
 * (logged); with -n, 1 when an app was rejected. */
static int
check_config(struct dm_main_opts *op)
{
	struct common_opts    *co = &op->co;
	struct dm_daemon_opts *o = &op->o;
	struct dmcfg           cfg;
	char                   err[512];
	int                    rc;

	if (common_opts_finish(co, "domainmgr") < 0) {
		return -1;
	}
	o->rundir = co->paths.run;
	if (!op->serial_set) {
		snprintf(op->serial, sizeof(op->serial), "%s/qemu/%%u.log",
		         co->paths.run);
		o->q.serial = op->serial;
	}
	if (!co->checkonly) {
		return 0;
	}
	if (dmcfg_load(o->config, &cfg, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	for (size_t i = 0; i < cfg.napps; i++) {
		if (!cfg.apps[i].valid) {
			log_warnx("config %s: %s", o->config,
			          cfg.apps[i].error);
		}
	}
	log_info("config %s: %zu apps, %zu rejected", o->config, cfg.napps,
	         cfg.nerrors);
	rc = cfg.nerrors > 0;
	dmcfg_free(&cfg);
	return rc;
}

static int
start(struct dm_daemon **d, struct dm_main_opts *op)
{
	if (op->o.qemu && op->o.q.serial[0] != '\0' && !op->serial_set) {
		char dir[PATH_LEN + 8];

		snprintf(dir, sizeof(dir), "%s/qemu", op->co.paths.run);
		if (mkdir_p(dir, 0700) < 0) {
			log_warn("mkdir %s", dir);
			return -1;
		}
	}
	/* before NNG starts its threads: they inherit the blocked mask, so
	 * the signals reach only our signalfd */
	if (dm_block_signals() < 0) {
		return -1;
	}
	return dm_daemon_open(d, &op->o);
}

int
main(int argc, char **argv)
{
	struct dm_main_opts op;
	struct dm_daemon   *d;
	int                 rc;

	if ((rc = parse_options(argc, argv, &op)) >= 0) {
		return rc;
	}
	if ((rc = check_config(&op)) != 0) {
		return 1;
	}
	if (op.co.checkonly) {
		return 0;
	}
	if (start(&d, &op) < 0) {
		return 1;
	}
	rc = dm_daemon_run(d);
	dm_daemon_close(d);
	return rc == 0 ? 0 : 1;
}
