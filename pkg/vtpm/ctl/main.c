/* main.c: vtpmctl wiring: global options, config check (-n), one
 * subcommand. */
#include "vtpmctl.h"

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
	    "usage: vtpmctl [--root DIR] [--timeout MS] COMMAND ...\n\n"
	    "Commands:\n"
	    "  status [--json]          every VM: DomainStatus joined with "
	    "VtpmStatus\n"
	    "  watch [--topic T] [--count N] [--for MS]\n"
	    "                           print each change of DomainStatus "
	    "and/or\n"
	    "                           VtpmStatus (T: domain, vtpm, all)\n"
	    "  purge UUID [--force]     remove the VM's vTPM state (guardian "
	    "PURGE);\n"
	    "                           refused while its vTPM is READY "
	    "unless --force\n"
	    "  tpm UUID                 bridge stdin/stdout to the vTPM's TPM "
	    "channel,\n"
	    "                           for the tpm2-tss cmd TCTI:\n"
	    "                           tpm2_getrandom -T \"cmd:vtpmctl "
	    "--root DIR tpm UUID\" 8\n"
	    "  keys status [--json]     the key broker's sealed policy "
	    "(branches, PCR\n"
	    "                           set), pending update, escrow (root)\n"
	    "  keys announce FILE       planned OS update: FILE holds the "
	    "predicted\n"
	    "                           PCR values [{bank, index, value}] "
	    "(root)\n"
	    "  keys recover-begin       escrow recovery: print a fresh "
	    "transport public\n"
	    "                           key for vtpm-verify escrow recover "
	    "(root)\n"
	    "  keys recover FILE        import the controller's re-wrapped "
	    "master (hex)\n"
	    "                           and reseal it to the PCRs now "
	    "(root)\n\n"
	    "  attest UUID [--nonce HEX]\n"
	    "                           JSON for a verifier: this device's AK "
	    "and the\n"
	    "                           VM's vTPM EKs (RSA, ECC) with their "
	    "certificates;\n"
	    "                           --nonce: plus a TPM2_Quote of the "
	    "vault "
	    "PCRs\n"
	    "  attest --device          this device's hardware EK (and maker "
	    "certificate),\n"
	    "                           AK, AK certificate, vault PCR values\n"
	    "  attest --activate FILE   answer a vtpm-verify challenge "
	    "(JSON)\n"
	    "  attest --set-ak-cert F   store the AK certificate (PEM) the "
	    "verifier issued\n\n"
	    "Options:\n"
	    "      --timeout MS         bound on each request (default "
	    "3000)\n");
	common_usage(f);
}

static int
cmd_status(const char *run, int timeout, int argc, char **argv)
{
	struct vctl_status st;
	bool               json = false;
	int                rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "vtpmctl: status: unknown option %s\n",
			        argv[i]);
			return 2;
		}
	}
	vctl_status_fetch(&st, run, timeout);
	if (json) {
		if (st.dom_err[0] != '\0') {
			fprintf(stderr, "vtpmctl: DomainStatus: %s\n",
			        st.dom_err);
		}
		if (st.vt_err[0] != '\0') {
			fprintf(stderr, "vtpmctl: VtpmStatus: %s\n", st.vt_err);
		}
		rc = vctl_status_print_json(&st, stdout);
	} else {
		rc = vctl_status_print_table(&st, stdout);
	}
	/* nothing to show and nobody to ask: say so in the exit code */
	if (rc == 0 && st.nrows == 0 && st.dom_err[0] && st.vt_err[0]) {
		rc = -1;
	}
	vctl_status_free(&st);
	return rc < 0 ? 1 : 0;
}

static int
cmd_watch(const char *run, int argc, char **argv)
{
	bool dom = true, vt = true;
	long count = 0;
	int  ms = 0;

	for (int i = 0; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--topic") == 0 && v != NULL) {
			dom = strcmp(v, "domain") == 0 || strcmp(v, "all") == 0;
			vt = strcmp(v, "vtpm") == 0 || strcmp(v, "all") == 0;
			if (!dom && !vt) {
				fprintf(stderr, "vtpmctl: watch: --topic "
				                "domain|vtpm|all\n");
				return 2;
			}
			i++;
		} else if (strcmp(argv[i], "--count") == 0 && v != NULL) {
			count = atol(v);
			i++;
		} else if (strcmp(argv[i], "--for") == 0 && v != NULL) {
			ms = atoi(v);
			i++;
		} else {
			fprintf(stderr, "vtpmctl: watch: unknown option %s\n",
			        argv[i]);
			return 2;
		}
	}
	return vctl_watch(run, dom, vt, count, ms);
}

static int
cmd_purge(const char *run, int timeout, int argc, char **argv)
{
	const char *uuid = NULL;
	bool        force = false;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0) {
			force = true;
		} else if (uuid == NULL && argv[i][0] != '-') {
			uuid = argv[i];
		} else {
			fprintf(stderr, "vtpmctl: purge: unexpected %s\n",
			        argv[i]);
			return 2;
		}
	}
	if (uuid == NULL) {
		fprintf(stderr, "vtpmctl: purge UUID [--force]\n");
		return 2;
	}
	return vctl_purge(run, uuid, force, timeout < 10000 ? 10000 : timeout);
}

enum { O_TIMEOUT = 256 };
static const struct option longopts[] = {
    COMMON_LONGOPTS,
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {NULL, 0, NULL, 0}};

/* Global options up to the command (optind then names it). -1: go on;
 * otherwise the exit status. */
static int
parse_options(int argc, char **argv, struct common_opts *co, int *timeout)
{
	int c, r;

	common_opts_init(co);
	*timeout = 3000;
	/* "+": stop at the command; its own options follow it */
	while ((c = getopt_long(argc, argv, "+" COMMON_SHORTOPTS, longopts,
	                        NULL)) != -1) {
		if ((r = common_opts_handle(co, c, optarg, "vtpmctl", usage)) !=
		    0) {
			if (r < 0) {
				return co->exit_status;
			}
			continue;
		}
		if (c == O_TIMEOUT) {
			*timeout = atoi(optarg);
			continue;
		}
		usage(stderr);
		return 2;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* Paths and logging; a CLI creates nothing (no common_opts_finish, which
 * makes directories). 0 or -1. */
static int
check_config(struct common_opts *co)
{
	if (co->paths.run[0] == '\0' && paths_init(&co->paths, "") < 0) {
		return -1;
	}
	log_procinit("vtpmctl");
	log_init(co->verbose < LOG_LVL_INFO ? co->verbose : LOG_LVL_WARN,
	         co->syslog);
	if (co->verbose == LOG_LVL_DEBUG) {
		log_setverbose(LOG_LVL_DEBUG);
	}
	return 0;
}

/* One command; its exit status. */
static int
run_command(const char *run, int timeout, const char *cmd, int argc,
            char **argv)
{
	if (strcmp(cmd, "status") == 0) {
		return cmd_status(run, timeout, argc, argv);
	}
	if (strcmp(cmd, "watch") == 0) {
		return cmd_watch(run, argc, argv);
	}
	if (strcmp(cmd, "purge") == 0) {
		return cmd_purge(run, timeout, argc, argv);
	}
	if (strcmp(cmd, "tpm") == 0) {
		if (argc != 1) {
			fprintf(stderr, "vtpmctl: tpm UUID\n");
			return 2;
		}
		return vctl_tpm_bridge(run, argv[0], timeout);
	}
	if (strcmp(cmd, "keys") == 0) {
		return vctl_keys(run, timeout, argc, argv);
	}
	if (strcmp(cmd, "attest") == 0) {
		return vctl_attest(run, argc, argv, timeout);
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "vtpmctl: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}

int
main(int argc, char **argv)
{
	struct common_opts co;
	int                timeout, rc;

	/* tpm2-tss would print expected errors (no EK yet); we report
	 * TPM errors ourselves */
	setenv("TSS2_LOG", "all+none", 0);
	if ((rc = parse_options(argc, argv, &co, &timeout)) >= 0) {
		return rc;
	}
	if (check_config(&co) < 0) {
		return 2;
	}
	return run_command(co.paths.run, timeout, argv[optind],
	                   argc - optind - 1, argv + optind + 1);
}
