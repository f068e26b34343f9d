/*
 * escrow.c: vtpm-verify escrow: the controller side of the recovery
 * escrow.
 *   escrow keygen --private FILE --public FILE
 *       a controller RSA-3072 key pair (PEM); the public half is the
 *       broker's --escrow-pubkey.
 *   escrow recover --private FILE --escrow FILE --to FILE
 *       unwrap the device's escrow record (master.escrow.json) with the
 *       controller key, re-wrap the master to the device's transport key
 *       (vtpmctl keys recover-begin) and print it in hex, for vtpmctl keys
 *       recover. The master lives only in locked memory here, and only
 *       for this call. Run it only after the controller has verified the
 *       device (attestation): this is what lets a changed boot have its
 *       keys back.
 */
#include "escrow.h"

#include "common.h"
#include "keyfmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

void
escrow_usage(FILE *f)
{
	fprintf(f,
	        "  escrow keygen --private FILE --public FILE\n"
	        "                           a controller key pair for the key "
	        "broker's\n"
	        "                           --escrow-pubkey (RSA-3072, PEM)\n"
	        "  escrow recover --private FILE --escrow FILE --to FILE\n"
	        "                           unwrap a device's "
	        "master.escrow.json and\n"
	        "                           re-wrap the master to its "
	        "transport key\n"
	        "                           (vtpmctl keys recover-begin); "
	        "prints hex\n");
}

static const char *
opt(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++) { /* argv[0]: the subcommand */
		if (strcmp(argv[i], name) == 0) {
			return argv[i + 1];
		}
	}
	return NULL;
}

static int
keygen(const char *priv, const char *pub)
{
	EVP_PKEY *k = EVP_RSA_gen(3072);
	FILE     *f;
	int       rc = 1;

	if (k == NULL) {
		fprintf(stderr, "vtpm-verify: escrow keygen: RSA failed\n");
		return 1;
	}
	umask(077);
	if ((f = fopen(priv, "w")) == NULL ||
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1) {
		fprintf(stderr, "vtpm-verify: %s: %s\n", priv, strerror(errno));
		goto out;
	}
	fclose(f);
	if ((f = fopen(pub, "w")) == NULL || PEM_write_PUBKEY(f, k) != 1) {
		fprintf(stderr, "vtpm-verify: %s: %s\n", pub, strerror(errno));
		goto out;
	}
	fclose(f);
	f = NULL;
	rc = 0;
out:
	if (f != NULL && rc != 0) {
		fclose(f);
	}
	EVP_PKEY_free(k);
	return rc;
}

static int
recover(const char *privpath, const char *escpath, const char *topath)
{
	struct escrow_file ef;
	EVP_PKEY          *priv = NULL, *to = NULL;
	uint8_t           *master = NULL, out[ESCROW_WRAP_MAX];
	size_t             olen;
	char               err[512], fp[65], id[65];
	FILE              *f;
	int                rc = 1;

	if (escrow_file_load(escpath, &ef, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		return 1;
	}
	if ((f = fopen(privpath, "r")) == NULL ||
	    (priv = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "vtpm-verify: %s: not a PEM private key\n",
		        privpath);
		if (f != NULL) {
			fclose(f);
		}
		return 1;
	}
	fclose(f);
	if (escrow_fingerprint(priv, fp) < 0 || strcmp(fp, ef.key_fp) != 0) {
		fprintf(stderr,
		        "vtpm-verify: %s was wrapped to controller key %s, not "
		        "to %s (%s)\n",
		        escpath, ef.key_fp, fp, privpath);
		goto out;
	}
	if (escrow_load_pubkey(topath, &to, fp, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: transport key: %s\n", err);
		goto out;
	}
	if ((master = secmem_alloc(SEAL_MASTER_LEN)) == NULL) {
		fprintf(stderr, "vtpm-verify: cannot lock memory\n");
		goto out;
	}
	if (escrow_unwrap(priv, ef.wrapped, ef.wlen, master) < 0) {
		fprintf(stderr, "vtpm-verify: %s: cannot unwrap (RSA-OAEP)\n",
		        escpath);
		goto out;
	}
	if (escrow_master_id(master, id) < 0 || strcmp(id, ef.master_id) != 0) {
		fprintf(stderr,
		        "vtpm-verify: %s: the unwrapped key does not match its "
		        "master id\n",
		        escpath);
		goto out;
	}
	if (escrow_wrap(to, master, SEAL_MASTER_LEN, out, sizeof(out), &olen) <
	    0) {
		fprintf(stderr, "vtpm-verify: cannot wrap to %s\n", topath);
		goto out;
	}
	for (size_t i = 0; i < olen; i++) {
		printf("%02x", out[i]);
	}
	printf("\n");
	rc = 0;
out:
	if (master != NULL) {
		secmem_free(master, SEAL_MASTER_LEN);
	}
	EVP_PKEY_free(priv);
	EVP_PKEY_free(to);
	return rc;
}

int
escrow_cmd(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";

	if (strcmp(sub, "keygen") == 0 && opt(argc, argv, "--private") &&
	    opt(argc, argv, "--public")) {
		return keygen(opt(argc, argv, "--private"),
		              opt(argc, argv, "--public"));
	}
	if (strcmp(sub, "recover") == 0 && opt(argc, argv, "--private") &&
	    opt(argc, argv, "--escrow") && opt(argc, argv, "--to")) {
		return recover(opt(argc, argv, "--private"),
		               opt(argc, argv, "--escrow"),
		               opt(argc, argv, "--to"));
	}
	fprintf(stderr, "usage: vtpm-verify escrow ...\n");
	escrow_usage(stderr);
	return 2;
}
