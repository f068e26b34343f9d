/* main.c: vtpm-verify wiring: global options, logging, one subcommand
 * from the table below (each in its own file; add a line to add a
 * command), the registry closed after it. */
#include "escrow.h"
#include "verify.h"

#include "common.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* escrow.c keeps its own argument parsing; it needs no verifier context */
static int
cmd_escrow(struct vfy_ctx *c, int argc, char **argv)
{
	(void) c;
	return escrow_cmd(argc, argv);
}

struct vfy_command {
	const char *name;
	int (*fn)(struct vfy_ctx *c, int argc, char **argv);
	const char *help;
};

static const struct vfy_command commands[] = {
    {"ca", vfy_cmd_ca, "print the CA certificate (created if absent)"},
    {"challenge", vfy_cmd_challenge,
     "FILE: MakeCredential challenge for the device in FILE"},
    {"activate", vfy_cmd_activate,
     "FILE: check the device's answer, issue its AK certificate"},
    {"verify-cert", vfy_cmd_verify_cert,
     "--ek-cert F --ak-cert F [--vm UUID] [--device ID]: chain only"},
    {"check", vfy_cmd_check,
     "FILE | --stream: a vtpmctl attest UUID report (--stream: one per\n"
     "               line on stdin, one JSON verdict per line): chain,\n"
     "               binding, clone alert"},
    {"alerts", vfy_cmd_alerts, "[--json]: the clone alerts recorded"},
    {"ack", vfy_cmd_ack, "ALERT [--by NAME]: an alert reviewed"},
    {"move", vfy_cmd_move,
     "EK --to DEVICE [--by NAME]: a planned migration of the EK's VM"},
    {"revoke", vfy_cmd_revoke,
     "DEVICE [--by NAME]: its AK and bindings refused from now on"},
    {"devices", vfy_cmd_devices,
     "[--state S] [--device ID] [--json]: the registered devices"},
    {"bindings", vfy_cmd_bindings,
     "[--device ID] [--ek FP] [--state S] [--json]: EK -> device"},
    {"moves", vfy_cmd_moves, "[--ek FP] [--json]: the migrations recorded"},
    {"schema", vfy_cmd_schema, "the registry's schema version"},
    {"nonce", vfy_cmd_nonce,
     "DEVICE: issue a quote nonce (vtpmctl attest UUID --nonce HEX)"},
    {"reference", vfy_cmd_reference,
     "DEVICE FILE: replace the device's reference PCR values"},
    {"escrow", cmd_escrow,
     "keygen|recover ...: recovery escrow (docs/updates.md)"},
};

int
vfy_ctx_ca(struct vfy_ctx *c, char *err, size_t errlen)
{
	char why[400];

	if (c->cacert != NULL) {
		return 0;
	}
	if (vfy_ca_load(c->ca, &c->cakey, &c->cacert, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "CA %s: %s", c->ca, why);
		c->cakey = NULL;
		c->cacert = NULL;
		return -1;
	}
	return 0;
}

int
vfy_ctx_registry(struct vfy_ctx *c, char *err, size_t errlen)
{
	if (c->reg_open) {
		return 0;
	}
	if (vfy_registry_open(&c->reg, c->db, err, errlen) < 0) {
		return -1;
	}
	c->reg_open = true;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: vtpm-verify [--db DSN] [--ca DIR] [--tpm-ca DIR] "
	           "[--tofu] COMMAND ...\n"
	           "The verifier: hardware EK against TPM maker CAs, AK "
	           "activation, EK\ncertificate chains, quotes, the device "
	           "registry and clone alerts.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	}
	fprintf(f,
	        "\nOptions:\n"
	        "      --db DSN     registry: sqlite:PATH or PATH (SQLite, "
	        "default\n"
	        "                   vtpm-verify.db), postgresql://... (libpq "
	        "URI) or\n"
	        "                   pg:KEY=VALUE... (libpq keyword DSN)\n"
	        "      --ca DIR     CA key and certificate (default "
	        "vtpm-verify-ca)\n"
	        "      --tpm-ca DIR TPM manufacturers' CA certificates (PEM, "
	        "roots and\n"
	        "                   intermediates) the hardware EK "
	        "certificate must chain to\n"
	        "                   (default: none)\n"
	        "      --tofu       enrol a device whose hardware EK cannot be "
	        "checked\n"
	        "                   (no certificate or no --tpm-ca): trust it "
	        "on first use,\n"
	        "                   with a warning (default: refuse)\n"
	        "Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 clone "
	        "alert, 4 boot\nstate (quoted PCRs) differs from the "
	        "reference, 5 unknown device, EK or alert.\n");
	common_usage(f);
}

enum { O_DB = 256, O_CA, O_TPM_CA, O_TOFU };
static const struct option longopts[] = {
    COMMON_LONGOPTS,
    {"db", required_argument, NULL, O_DB},
    {"ca", required_argument, NULL, O_CA},
    {"tpm-ca", required_argument, NULL, O_TPM_CA},
    {"tofu", no_argument, NULL, O_TOFU},
    {NULL, 0, NULL, 0}};

/* Global options up to the command (optind then names it). -1: go on;
 * otherwise the exit status. */
static int
parse_options(int argc, char **argv, struct common_opts *co,
              struct vfy_ctx *ctx)
{
	int c, r;

	memset(ctx, 0, sizeof(*ctx));
	snprintf(ctx->db, sizeof(ctx->db), "vtpm-verify.db");
	snprintf(ctx->ca, sizeof(ctx->ca), "vtpm-verify-ca");
	common_opts_init(co);
	while ((c = getopt_long(argc, argv, "+" COMMON_SHORTOPTS, longopts,
	                        NULL)) != -1) {
		if ((r = common_opts_handle(co, c, optarg, "vtpm-verify",
		                            usage)) != 0) {
			if (r < 0) {
				return co->exit_status;
			}
			continue;
		}
		if (c == O_DB) {
			snprintf(ctx->db, sizeof(ctx->db), "%s", optarg);
		} else if (c == O_CA) {
			snprintf(ctx->ca, sizeof(ctx->ca), "%s", optarg);
		} else if (c == O_TPM_CA) {
			snprintf(ctx->tpm_ca, sizeof(ctx->tpm_ca), "%s",
			         optarg);
		} else if (c == O_TOFU) {
			ctx->tofu = true;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* The command named argv[0]; its exit status. The registry, opened on
 * demand by the command, is closed after it. */
static int
run_command(struct vfy_ctx *ctx, int argc, char **argv)
{
	int rc;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[0], commands[i].name) == 0) {
			rc = commands[i].fn(ctx, argc - 1, argv + 1);
			if (ctx->reg_open) {
				vfy_registry_close(&ctx->reg);
			}
			EVP_PKEY_free(ctx->cakey);
			X509_free(ctx->cacert);
			return rc;
		}
	}
	fprintf(stderr, "vtpm-verify: unknown command %s\n", argv[0]);
	usage(stderr);
	return 2;
}

int
main(int argc, char **argv)
{
	struct common_opts co;
	struct vfy_ctx     ctx;
	int                rc;

	if ((rc = parse_options(argc, argv, &co, &ctx)) >= 0) {
		return rc;
	}
	/* a controller-side CLI: logging only, no device directories */
	log_procinit("vtpm-verify");
	log_init(LOG_LVL_WARN, co.syslog);
	return run_command(&ctx, argc - optind, argv + optind);
}
