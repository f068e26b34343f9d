/* main.c: vtpm-keybroker wiring: options, config check (-n), the broker
 * (serve.c) until SIGTERM/SIGINT, orderly shutdown. */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vtpm-keybroker --root DIR --tcti STRING [options]\n"
	    "Seals a master key in the hardware TPM under the vault PCR "
	    "policy and\nreleases per-VM state keys to the launcher.\n\n"
	    "  -t, --tcti STRING      TPM: device:/dev/tpmrm0, "
	    "swtpm:host=127.0.0.1,port=P,\n"
	    "                         or none (no hardware TPM)\n"
	    "  -u, --launcher-uid UID the only uid answered (default 0)\n"
	    "  -p, --pcrs LIST        vault PCR set, sha256 bank (default "
	    "%s);\n"
	    "                         must hold 0, not 5, indexes 0-15\n"
	    "  -w, --workers N        request worker threads (default 32)\n"
	    "      --pending-boots N  boots on the old image after which an "
	    "announced\n"
	    "                         update is dropped (default %d, 1-1000)\n"
	    "      --escrow-pubkey FILE  recovery escrow: wrap the master to "
	    "this\n"
	    "                         controller RSA public key (PEM); off "
	    "by default\n"
	    "      --srk-handle H     persistent handle of the storage key "
	    "sealed under\n"
	    "                         (default 0x%08x; an existing storage "
	    "key there is\n"
	    "                         reused, e.g. EVE's SRK 0x81000002)\n"
	    "      --ek-handle H      hardware EK (default 0x%08x)\n"
	    "      --ak-handle H      attestation key (default 0x%08x)\n"
	    "                         An object of another kind at a "
	    "configured handle is\n"
	    "                         refused and never overwritten.\n"
	    "      --pcr-file PATH    the OS's PCR policy file (EVE: "
	    "/persist/status/\n"
	    "                         policy-pcr.json): the vault PCR set "
	    "comes from it and\n"
	    "                         follows it (reseal on change; a bad "
	    "file keeps the\n"
	    "                         last good set); off by default\n"
	    "      --pcr-poll MS      how often the file is checked (default "
	    "1000)\n",
	    SEAL_DEFAULT_PCRS, UPDATE_DEFAULT_BOOTS, SEAL_DEFAULT_SRK,
	    SEAL_DEFAULT_EK, SEAL_DEFAULT_AK);
	common_usage(f);
}

/* -1: go on; otherwise the exit status (--help, a bad option). */
static int
parse_options(int argc, char **argv, struct common_opts *o,
              struct broker_cfg *cfg, const char **pcrs)
{
	static const struct option longopts[] = {
	    COMMON_LONGOPTS,
	    {"tcti", required_argument, NULL, 't'},
	    {"launcher-uid", required_argument, NULL, 'u'},
	    {"pcrs", required_argument, NULL, 'p'},
	    {"workers", required_argument, NULL, 'w'},
	    {"pending-boots", required_argument, NULL, 'B'},
	    {"escrow-pubkey", required_argument, NULL, 'E'},
	    {"srk-handle", required_argument, NULL, 'H'},
	    {"ek-handle", required_argument, NULL, 'K'},
	    {"ak-handle", required_argument, NULL, 'A'},
	    {"pcr-file", required_argument, NULL, 'F'},
	    {"pcr-poll", required_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0}};
	char err[REASON_LEN];
	int  uid, c, r;

	common_opts_init(o);
	memset(cfg, 0, sizeof(*cfg));
	cfg->pending_boots = UPDATE_DEFAULT_BOOTS;
	cfg->handles = (struct tpm_handles) TPM_HANDLES_DEFAULT;
	*pcrs = SEAL_DEFAULT_PCRS;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "t:u:p:w:",
	                        longopts, NULL)) != -1) {
		if ((r = common_opts_handle(o, c, optarg, "vtpm-keybroker",
		                            usage)) != 0) {
			if (r < 0) {
				return o->exit_status;
			}
			continue;
		}
		switch (c) {
		case 't':
			snprintf(cfg->tcti, sizeof(cfg->tcti), "%s", optarg);
			break;
		case 'u':
			if (opt_int(optarg, 0, INT_MAX, &uid) < 0) {
				fprintf(
				    stderr,
				    "vtpm-keybroker: --launcher-uid %s: not a "
				    "uid\n",
				    optarg);
				return 2;
			}
			cfg->launcher_uid = (uid_t) uid;
			break;
		case 'p':
			*pcrs = optarg;
			break;
		case 'w':
			if (opt_int(optarg, 1, 64, &cfg->nworkers) < 0) {
				fprintf(stderr,
				        "vtpm-keybroker: --workers %s: 1-64\n",
				        optarg);
				return 2;
			}
			break;
		case 'E':
			snprintf(cfg->escrow_pubkey, sizeof(cfg->escrow_pubkey),
			         "%s", optarg);
			break;
		case 'B':
			if (opt_int(optarg, 1, 1000, &cfg->pending_boots) < 0) {
				fprintf(stderr,
				        "vtpm-keybroker: --pending-boots %s: "
				        "1-1000\n",
				        optarg);
				return 2;
			}
			break;
		case 'F':
			snprintf(cfg->pcr_file, sizeof(cfg->pcr_file), "%s",
			         optarg);
			break;
		case 'P': {
			int ms;

			if (opt_int(optarg, 50, 60000, &ms) < 0) {
				fprintf(stderr,
				        "vtpm-keybroker: --pcr-poll %s: "
				        "50-60000 ms\n",
				        optarg);
				return 2;
			}
			cfg->pcr_poll_ms = (unsigned) ms;
			break;
		}
		case 'H':
		case 'K':
		case 'A': {
			uint32_t *h = c == 'H'   ? &cfg->handles.srk
			              : c == 'K' ? &cfg->handles.ek
			                         : &cfg->handles.ak;

			cfg->srk_explicit = cfg->srk_explicit || c == 'H';

			if (tpm_handle_parse(optarg, h, err, sizeof(err)) < 0) {
				fprintf(stderr,
				        "vtpm-keybroker: --%s-handle: %s\n",
				        c == 'H'   ? "srk"
				        : c == 'K' ? "ek"
				                   : "ak",
				        err);
				return 2;
			}
			break;
		}
		default:
			usage(stderr);
			return 2;
		}
	}
	if (tpm_handles_check(&cfg->handles, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-keybroker: %s\n", err);
		return 2;
	}
	if (cfg->tcti[0] == '\0') {
		fprintf(stderr, "vtpm-keybroker: --tcti is required (or "
		                "--tcti none)\n");
		return 2;
	}
	return -1;
}

/* The PCR set, logging and directories. 0, -1 (logged) or 2 (usage). */
static int
check_config(struct common_opts *o, struct broker_cfg *cfg, const char *pcrs)
{
	char err[512];

	if (pcrset_parse(pcrs, &cfg->pcrs, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-keybroker: --pcrs: %s\n", err);
		return 2;
	}
	if (common_opts_finish(o, "keybroker") < 0) {
		log_error("cannot set up the directories under %s",
		          o->paths.root[0] ? o->paths.root : "/");
		return -1;
	}
	snprintf(cfg->rundir, sizeof(cfg->rundir), "%s", o->paths.run);
	snprintf(cfg->vault, sizeof(cfg->vault), "%s", o->paths.vault);
	if (o->checkonly) {
		printf("vtpm-keybroker: configuration ok (tcti %s, pcrs %s, "
		       "SRK 0x%x, EK 0x%x, AK 0x%x)\n",
		       cfg->tcti, pcrs, cfg->handles.srk, cfg->handles.ek,
		       cfg->handles.ak);
	}
	return 0;
}

static int
start(struct broker **b, const struct broker_cfg *cfg)
{
	char err[512];

	/* no core dumps and no ptrace by other uids: keys live here */
	(void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	signals_catch_quit();

	if (broker_open(b, cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

/* The broker's threads serve; this one waits for SIGTERM/SIGINT. */
static void
run(void)
{
	while (!sig_quit) {
		sleep_ms(200);
	}
}

static void
stop(struct broker *b)
{
	log_info("stopping");
	broker_close(b);
}

int
main(int argc, char **argv)
{
	struct common_opts o;
	struct broker_cfg  cfg;
	struct broker     *b;
	const char        *pcrs;
	int                rc;

	/* tpm2-tss would print expected errors (an absent SRK); we log
	 * every TPM error ourselves, decoded */
	setenv("TSS2_LOG", "all+none", 0);
	if ((rc = parse_options(argc, argv, &o, &cfg, &pcrs)) >= 0) {
		return rc;
	}
	if ((rc = check_config(&o, &cfg, pcrs)) != 0) {
		return rc < 0 ? 1 : rc;
	}
	if (o.checkonly) {
		return 0;
	}
	if (start(&b, &cfg) < 0) {
		return 1;
	}
	run();
	stop(b);
	return 0;
}
