/*
 * vtpm-caps: run a daemon with only the capabilities it needs.
 *   vtpm-caps CAP[,CAP...]|none [--] PROGRAM [ARGS...]
 * As root: keeps the named capabilities (libcap-ng names: chown,
 * dac_override, ...) in the effective, permitted and bounding sets and
 * drops every other one, sets no_new_privs, then executes PROGRAM (which
 * stays uid 0 and so gets exactly these). Not root: nothing to drop, it
 * just executes PROGRAM. The image's init starts the guardian and the key
 * broker this way (docs/integration.md lists what each one keeps); the
 * launcher drops its own after start.
 */
#include <cap-ng.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: vtpm-caps CAP[,CAP...]|none [--] PROGRAM [ARGS...]\n"
	        "Runs PROGRAM keeping only these capabilities (effective,\n"
	        "permitted and bounding sets; names as in capabilities(7)\n"
	        "without CAP_, e.g. chown,dac_override), with no_new_privs.\n"
	        "  --help     this text\n"
	        "  --version  version\n");
}

/* keep: "chown,dac_override" or "none"; 0 or -1 (message printed) */
static int
restrict_caps(const char *keep)
{
	char *list = strdup(keep), *tok, *save = NULL;

	if (list == NULL) {
		fprintf(stderr, "vtpm-caps: out of memory\n");
		return -1;
	}
	capng_clear(CAPNG_SELECT_BOTH);
	for (tok = strtok_r(list, ",", &save);
	     tok != NULL && strcmp(keep, "none") != 0;
	     tok = strtok_r(NULL, ",", &save)) {
		int cap = capng_name_to_capability(tok);

		if (cap < 0) {
			fprintf(stderr, "vtpm-caps: %s: no such capability\n",
			        tok);
			free(list);
			return -1;
		}
		capng_update(CAPNG_ADD,
		             CAPNG_EFFECTIVE | CAPNG_PERMITTED |
		                 CAPNG_BOUNDING_SET,
		             (unsigned) cap);
	}
	free(list);
	if (capng_apply(CAPNG_SELECT_BOTH) != 0) {
		fprintf(stderr,
		        "vtpm-caps: cannot restrict capabilities to %s "
		        "(libcap-ng capng_apply; one not held?)\n",
		        keep);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	int first = 2;

	if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("vtpm-caps 1.0\n");
		return 0;
	}
	if (argc >= 3 && strcmp(argv[2], "--") == 0) {
		first = 3;
	}
	if (argc <= first || argv[first][0] == '\0') {
		usage(stderr);
		return 2;
	}
	if (geteuid() == 0 && restrict_caps(argv[1]) < 0) {
		return 1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "vtpm-caps: no_new_privs: %s\n",
		        strerror(errno));
		return 1;
	}
	execvp(argv[first], argv + first);
	fprintf(stderr, "vtpm-caps: %s: %s\n", argv[first], strerror(errno));
	return 127;
}
