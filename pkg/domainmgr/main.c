/* main.c: domainmgr: options -> logging -> config check -> event loop. */
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

int
main(int argc, char **argv)
{
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
	static const struct dm_timeouts def = DM_TIMEOUTS_DEFAULT;
	struct common_opts              co;
	struct dm_daemon_opts           o;
	char                            serial[PATH_LEN + 16];
	bool                            serial_set = false;
	int                             c;

	common_opts_init(&co);
	memset(&o, 0, sizeof(o));
	o.to = def;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "c:", longopts,
	                        NULL)) != -1) {
		unsigned *ms = NULL;

		if (common_opts_handle(&co, c, optarg, "domainmgr", usage)) {
			continue;
		}
		switch (c) {
		case 'c':
			o.config = optarg;
			break;
		case O_QEMU:
			o.qemu = true;
			break;
		case O_BIN:
			o.q.binary = optarg;
			break;
		case O_KERNEL:
			o.q.kernel = optarg;
			break;
		case O_INITRD:
			o.q.initrd = optarg;
			break;
		case O_APPEND:
			o.q.append = optarg;
			break;
		case O_MEM:
			o.q.memory = optarg;
			break;
		case O_SERIAL:
			o.q.serial = optarg;
			serial_set = true;
			break;
		case O_QARG:
			if (o.q.nextra >=
			    (int) (sizeof(o.q.extra) / sizeof(o.q.extra[0]))) {
				fprintf(stderr, "domainmgr: too many "
				                "--qemu-arg\n");
				return 2;
			}
			o.q.extra[o.q.nextra++] = optarg;
			break;
		case O_HALT:
			ms = &o.to.halt_ms;
			break;
		case O_DEL:
			ms = &o.to.delete_ms;
			break;
		case O_LINGER:
			ms = &o.to.linger_ms;
			break;
		case O_KILL:
			ms = &o.to.vm_kill_ms;
			break;
		default:
			usage(stderr);
			return 2;
		}
		if (ms != NULL) {
			int v;

			if (opt_int(optarg, 0, 3600000, &v) < 0) {
				fprintf(stderr,
				        "domainmgr: %s: not a number of "
				        "milliseconds (0-3600000)\n",
				        optarg);
				return 2;
			}
			*ms = (unsigned) v;
		}
	}
	if (optind < argc || o.config == NULL) {
		fprintf(stderr, "domainmgr: %s\n",
		        o.config == NULL ? "--config FILE is required"
		                         : "unexpected argument");
		usage(stderr);
		return 2;
	}
	if (o.qemu && (o.q.kernel == NULL || o.q.kernel[0] == '\0')) {
		fprintf(stderr, "domainmgr: --qemu needs --kernel FILE\n");
		return 2;
	}
	if (common_opts_finish(&co, "domainmgr") < 0) {
		return 1;
	}
	o.rundir = co.paths.run;
	if (!serial_set) {
		snprintf(serial, sizeof(serial), "%s/qemu/%%u.log",
		         co.paths.run);
		o.q.serial = serial;
	}
	if (co.checkonly) {
		struct dmcfg cfg;
		char         err[512];

		if (dmcfg_load(o.config, &cfg, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return 1;
		}
		for (size_t i = 0; i < cfg.napps; i++) {
			if (!cfg.apps[i].valid) {
				log_warnx("config %s: %s", o.config,
				          cfg.apps[i].error);
			}
		}
		log_info("config %s: %zu apps, %zu rejected", o.config,
		         cfg.napps, cfg.nerrors);
		c = cfg.nerrors > 0;
		dmcfg_free(&cfg);
		return c;
	}
	if (o.qemu && o.q.serial[0] != '\0' && !serial_set) {
		char dir[PATH_LEN + 8];

		snprintf(dir, sizeof(dir), "%s/qemu", co.paths.run);
		if (mkdir_p(dir, 0700) < 0) {
			log_warn("mkdir %s", dir);
			return 1;
		}
	}
	/* before NNG starts its threads: they inherit the blocked mask, so
	 * the signals reach only our signalfd */
	if (dm_block_signals() < 0) {
		return 1;
	}
	return dm_daemon_run(&o) == 0 ? 0 : 1;
}
