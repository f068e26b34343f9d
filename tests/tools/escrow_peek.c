/*
 * escrow_peek.c: test only. Unwraps a key broker's escrow record with the
 * controller's private key and prints the master key in hex, so a test
 * can scan the broker's memory and files for it (tests/tools/key_scan).
 *   escrow_peek --private FILE --escrow FILE
 * Never part of a product: vtpm-verify escrow recover re-wraps the master
 * and never prints it.
 */
#include "common.h"
#include "keyfmt.h"

#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>

int
main(int argc, char **argv)
{
	struct escrow_file ef;
	EVP_PKEY          *k;
	uint8_t           *m;
	char               err[512];
	FILE              *f;

	if (argc != 5 || strcmp(argv[1], "--private") != 0 ||
	    strcmp(argv[3], "--escrow") != 0) {
		fprintf(stderr, "usage: escrow_peek --private FILE --escrow "
		                "FILE\n");
		return 2;
	}
	if ((f = fopen(argv[2], "r")) == NULL ||
	    (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "escrow_peek: %s: not a private key\n",
		        argv[2]);
		return 1;
	}
	fclose(f);
	if (escrow_file_load(argv[4], &ef, err, sizeof(err)) < 0) {
		fprintf(stderr, "escrow_peek: %s\n", err);
		return 1;
	}
	if ((m = secmem_alloc(SEAL_MASTER_LEN)) == NULL ||
	    escrow_unwrap(k, ef.wrapped, ef.wlen, m) < 0) {
		fprintf(stderr, "escrow_peek: cannot unwrap %s\n", argv[4]);
		return 1;
	}
	for (int i = 0; i < SEAL_MASTER_LEN; i++) {
		printf("%02x", m[i]);
	}
	printf("\n");
	secmem_free(m, SEAL_MASTER_LEN);
	EVP_PKEY_free(k);
	return 0;
}
