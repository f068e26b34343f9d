/* main.c: vtpm-verify, the controller-side tool: one subcommand. */
#include "escrow.h"

#include "common.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: vtpm-verify COMMAND ...\n\nCommands:\n");
	escrow_usage(f);
	fprintf(f, "\n");
	common_usage(f);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {COMMON_LONGOPTS,
	                                         {NULL, 0, NULL, 0}};
	struct common_opts         co;
	int                        c;

	common_opts_init(&co);
	while ((c = getopt_long(argc, argv, "+" COMMON_SHORTOPTS, longopts,
	                        NULL)) != -1) {
		if (!common_opts_handle(&co, c, optarg, "vtpm-verify", usage)) {
			usage(stderr);
			return 2;
		}
	}
	log_procinit("vtpm-verify");
	log_init(LOG_LVL_WARN, 0);
	if (optind < argc && strcmp(argv[optind], "escrow") == 0) {
		return escrow_cmd(argc - optind - 1, argv + optind + 1);
	}
	usage(stderr);
	return 2;
}
