/* opts.c: the command-line conventions all daemons share. */
#include "common.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
common_opts_init(struct common_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->verbose = LOG_LVL_INFO;
}

void
common_usage(FILE *f)
{
	fprintf(f, "Common options:\n"
	           "  -R, --root DIR   prefix for /run/vtpm and /persist "
	           "(default: /)\n"
	           "  -v, --verbose    log debug messages\n"
	           "  -q, --quiet      log warnings and errors only\n"
	           "  -S, --syslog     also log to syslog\n"
	           "  -n               check configuration and exit\n"
	           "  -h, --help       show this help\n"
	           "  -V, --version    show the version\n");
}

int
common_opts_handle(struct common_opts *o, int c, const char *arg,
                   const char *prog, void (*usage)(FILE *))
{
	switch (c) {
	case 'R':
		if (paths_init(&o->paths, arg) < 0) {
			fprintf(stderr, "%s: --root %s: path too long\n", prog,
			        arg);
			o->exit_status = 2;
			return -1;
		}
		return 1;
	case 'v':
		o->verbose = LOG_LVL_DEBUG;
		return 1;
	case 'q':
		o->verbose = LOG_LVL_WARN;
		return 1;
	case 'S':
		o->syslog = 1;
		return 1;
	case 'n':
		o->checkonly = 1;
		return 1;
	case 'h':
		usage(stdout);
		o->exit_status = 0;
		return -1;
	case 'V':
		printf("%s %s\n", prog, VTPM_VERSION);
		o->exit_status = 0;
		return -1;
	default:
		return 0;
	}
}

int
common_opts_finish(struct common_opts *o, const char *procname)
{
	if (o->paths.run[0] == '\0' && paths_init(&o->paths, "") < 0) {
		return -1;
	}
	log_procinit(procname);
	log_init(o->verbose, o->syslog);
	if (!o->checkonly && paths_mkdirs(&o->paths) < 0) {
		return -1;
	}
	return 0;
}

int
opt_int(const char *s, int min, int max, int *out)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		return -1;
	}
	*out = (int) v;
	return 0;
}
