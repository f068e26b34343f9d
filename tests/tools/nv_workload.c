/*
 * nv_workload: a TPM workload that writes state, through tpm2-tss ESAPI
 * (tests of the state guardian; bench/guardian.sh).
 *   nv_workload --tcti T write --index H [--count N] [--start V]
 *       define the 8-byte NV index H (owner auth) when missing, then write
 *       V, V+1, ...; prints "ack V" (flushed) after each acknowledged write.
 *       N = 0: until an error. Exit 1 on the first TPM/transport error.
 *   nv_workload --tcti T read --index H      print the value; 1 if absent
 *   nv_workload --tcti T persist --handle P  make an ECC primary persistent
 *                                            at P unless one is there
 *   nv_workload --tcti T has --handle P      exit 0 when P exists
 *   nv_workload --tcti T bench --index H --seconds S
 *       write for S seconds; print {"writes": N, "per_s": R}
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
open_ctx(const char *tcti, ESYS_CONTEXT **ctx, TSS2_TCTI_CONTEXT **tc)
{
	TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti, tc);

	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: tcti %s: %s\n", tcti,
		        Tss2_RC_Decode(rc));
		return -1;
	}
	rc = Esys_Initialize(ctx, *tc, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: Esys_Initialize: %s\n",
		        Tss2_RC_Decode(rc));
		Tss2_TctiLdr_Finalize(tc);
		return -1;
	}
	return 0;
}

/* ESYS_TR of an existing NV index, or define it */
static int
nv_get(ESYS_CONTEXT *ctx, uint32_t index, bool define, ESYS_TR *tr)
{
	TSS2_RC         rc;
	TPM2B_AUTH      auth = {0};
	TPM2B_NV_PUBLIC pub = {
	    .nvPublic = {.nvIndex = index,
	                 .nameAlg = TPM2_ALG_SHA256,
	                 .attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD |
	                               TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD,
	                 .dataSize = 8}};

	rc = Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE,
	                           ESYS_TR_NONE, tr);
	if (rc == TSS2_RC_SUCCESS) {
		return 0;
	}
	if (!define) {
		return 1;
	}
	rc = Esys_NV_DefineSpace(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	                         ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub, tr);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: NV_DefineSpace 0x%x: %s\n", index,
		        Tss2_RC_Decode(rc));
		return -1;
	}
	return 0;
}

static int
nv_write(ESYS_CONTEXT *ctx, ESYS_TR tr, uint64_t v)
{
	TPM2B_MAX_NV_BUFFER d = {.size = 8};
	TSS2_RC             rc;

	for (int i = 0; i < 8; i++) {
		d.buffer[i] = (uint8_t) (v >> (56 - 8 * i));
	}
	rc = Esys_NV_Write(ctx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD,
	                   ESYS_TR_NONE, ESYS_TR_NONE, &d, 0);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: NV_Write %" PRIu64 ": %s\n", v,
		        Tss2_RC_Decode(rc));
		return -1;
	}
	return 0;
}

static int
nv_read(ESYS_CONTEXT *ctx, ESYS_TR tr, uint64_t *v)
{
	TPM2B_MAX_NV_BUFFER *d = NULL;
	TSS2_RC              rc;

	rc = Esys_NV_Read(ctx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD,
	                  ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &d);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: NV_Read: %s\n",
		        Tss2_RC_Decode(rc));
		return -1;
	}
	*v = 0;
	for (int i = 0; i < 8 && i < d->size; i++) {
		*v = *v << 8 | d->buffer[i];
	}
	Esys_Free(d);
	return 0;
}

static int
persist(ESYS_CONTEXT *ctx, uint32_t handle)
{
	TPM2B_SENSITIVE_CREATE sens = {0};
	TPM2B_PUBLIC           in = {
	              .publicArea = {.type = TPM2_ALG_ECC,
	                             .nameAlg = TPM2_ALG_SHA256,
	                             .objectAttributes =
	                                 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
	                                 TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	                                 TPMA_OBJECT_SENSITIVEDATAORIGIN |
	                                 TPMA_OBJECT_USERWITHAUTH,
	                             .parameters.eccDetail = {
	                                 .symmetric = {.algorithm = TPM2_ALG_AES,
	                                               .keyBits.aes = 128,
	                                               .mode.aes = TPM2_ALG_CFB},
	                                 .scheme = {.scheme = TPM2_ALG_NULL},
	                                 .curveID = TPM2_ECC_NIST_P256,
	                                 .kdf = {.scheme = TPM2_ALG_NULL}}}};
	TPM2B_DATA         outside = {0};
	TPML_PCR_SELECTION pcrs = {0};
	ESYS_TR            obj, per, existing;
	TSS2_RC            rc;

	if (Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE,
	                          ESYS_TR_NONE, &existing) == TSS2_RC_SUCCESS) {
		return 0;
	}
	rc = Esys_CreatePrimary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	                        ESYS_TR_NONE, ESYS_TR_NONE, &sens, &in,
	                        &outside, &pcrs, &obj, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: CreatePrimary: %s\n",
		        Tss2_RC_Decode(rc));
		return -1;
	}
	rc = Esys_EvictControl(ctx, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD,
	                       ESYS_TR_NONE, ESYS_TR_NONE, handle, &per);
	Esys_FlushContext(ctx, obj);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "nv_workload: EvictControl 0x%x: %s\n", handle,
		        Tss2_RC_Decode(rc));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"tcti", required_argument, NULL, 't'},
	    {"index", required_argument, NULL, 'i'},
	    {"handle", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'c'},
	    {"start", required_argument, NULL, 's'},
	    {"seconds", required_argument, NULL, 'S'},
	    {NULL, 0, NULL, 0}};
	const char        *tcti = NULL, *cmd;
	uint32_t           index = 0x1500100, handle = 0x81000100;
	uint64_t           count = 0, start = 1, v;
	double             secs = 5;
	ESYS_CONTEXT      *ctx;
	TSS2_TCTI_CONTEXT *tc;
	ESYS_TR            tr;
	int                c, rc = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tcti = optarg;
			break;
		case 'i':
			index = (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'p':
			handle = (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'c':
			count = strtoull(optarg, NULL, 0);
			break;
		case 's':
			start = strtoull(optarg, NULL, 0);
			break;
		case 'S':
			secs = atof(optarg);
			break;
		default:
			return 2;
		}
	}
	if (tcti == NULL || optind >= argc) {
		fprintf(stderr, "usage: nv_workload --tcti T "
		                "write|read|persist|has|bench ...\n");
		return 2;
	}
	cmd = argv[optind];
	if (open_ctx(tcti, &ctx, &tc) < 0) {
		return 1;
	}
	if (strcmp(cmd, "write") == 0) {
		if (nv_get(ctx, index, true, &tr) != 0) {
			rc = 1;
		}
		for (v = start; rc == 0 && (count == 0 || v < start + count);
		     v++) {
			if (nv_write(ctx, tr, v) < 0) {
				rc = 1;
				break;
			}
			printf("ack %" PRIu64 "\n", v);
			fflush(stdout);
		}
	} else if (strcmp(cmd, "read") == 0) {
		if (nv_get(ctx, index, false, &tr) != 0 ||
		    nv_read(ctx, tr, &v) < 0) {
			rc = 1;
		} else {
			printf("%" PRIu64 "\n", v);
		}
	} else if (strcmp(cmd, "persist") == 0) {
		rc = persist(ctx, handle) < 0;
	} else if (strcmp(cmd, "has") == 0) {
		rc = Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE,
		                           ESYS_TR_NONE, ESYS_TR_NONE,
		                           &tr) != TSS2_RC_SUCCESS;
	} else if (strcmp(cmd, "bench") == 0) {
		double   t0, t;
		uint64_t n = 0;
		if (nv_get(ctx, index, true, &tr) != 0) {
			rc = 1;
		} else {
			t0 = now_s();
			while ((t = now_s()) - t0 < secs) {
				if (nv_write(ctx, tr, start + n) < 0) {
					rc = 1;
					break;
				}
				n++;
			}
			printf("{\"writes\": %" PRIu64 ", \"per_s\": %.1f}\n",
			       n, n / (now_s() - t0));
		}
	} else {
		fprintf(stderr, "nv_workload: unknown command %s\n", cmd);
		rc = 2;
	}
	Esys_Finalize(&ctx);
	Tss2_TctiLdr_Finalize(&tc);
	return rc;
}
