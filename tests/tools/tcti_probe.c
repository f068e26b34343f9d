/*
 * tcti_probe: opens a TPM through the tpm2-tss TCTI loader (which dlopen()s
 * libtss2-tcti-<name>.so.0) and asks it for 8 random bytes. The image test
 * runs it inside the container's chroot to prove that the dlopen'd TCTI
 * libraries the key broker needs are in the image and work there.
 *   tcti_probe TCTI    e.g. swtpm:host=127.0.0.1,port=2321
 * Prints the bytes in hex; exit 0 on success, 1 with the TSS2 rc otherwise.
 */
#include "common.h"

#include <stdio.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: tcti_probe TCTI\n"
	           "  open TCTI through the TCTI loader, print 8 random "
	           "bytes from the TPM\n");
}

int
main(int argc, char **argv)
{
	TSS2_TCTI_CONTEXT *tcti = NULL;
	ESYS_CONTEXT      *esys = NULL;
	TPM2B_DIGEST      *rnd = NULL;
	TSS2_RC            rc;
	int                ret = 1;

	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("tcti_probe %s\n", VTPM_VERSION);
		return 0;
	}
	rc = Tss2_TctiLdr_Initialize(argv[1], &tcti);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "tcti_probe: Tss2_TctiLdr_Initialize %s: %s\n",
		        argv[1], Tss2_RC_Decode(rc));
		return 1;
	}
	rc = Esys_Initialize(&esys, tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "tcti_probe: Esys_Initialize %s: %s\n", argv[1],
		        Tss2_RC_Decode(rc));
		goto fail_tcti;
	}
	rc = Esys_GetRandom(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 8,
	                    &rnd);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "tcti_probe: Esys_GetRandom %s: %s\n", argv[1],
		        Tss2_RC_Decode(rc));
		goto fail_esys;
	}
	for (int i = 0; i < rnd->size; i++) {
		printf("%02x", rnd->buffer[i]);
	}
	printf("\n");
	Esys_Free(rnd);
	ret = 0;
fail_esys:
	Esys_Finalize(&esys);
fail_tcti:
	Tss2_TctiLdr_Finalize(&tcti);
	return ret;
}
