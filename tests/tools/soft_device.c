/*
 * soft_device: a device for vtpm-verify whose TPM is software (soft_tpm.h),
 * so that tests and benchmarks can enroll many devices and produce many
 * valid reports fast. Keys live in DIR (0700).
 *
 *   soft_device new DIR [--ek PEM]     make the AK (and the EK, or reuse
 *                                      PEM's), print the device document
 *                                      (as vtpmctl attest --device)
 *   soft_device answer DIR CHALLENGE   ActivateCredential of the
 *                                      verifier's challenge: the response
 *                                      (as vtpmctl attest --activate)
 *   soft_device report DIR UUID [--vm-ek FILE]
 *                                      one report (vtpmctl attest UUID) on
 *                                      one line: the VM's EK (DIR/UUID.ek,
 *                                      made on first use, or FILE: another
 *                                      device's, i.e. a clone), certified
 *                                      by this device's AK
 *   soft_device reports DIR N PREFIX   N reports of N VMs, UUIDs PREFIX
 *                                      (8-4-4-4 hex) + a 12-digit counter
 */
#include "soft_tpm.h"

#include "common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

static int
die(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "soft_device: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	return 1;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE     *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL) {
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static int
save_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	int   ok;

	if (f == NULL) {
		return -1;
	}
	ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok ? 0 : -1;
}

static void
path_in(char *dst, size_t len, const char *dir, const char *name)
{
	snprintf(dst, len, "%s/%s", dir, name);
}

/* the device's AK (and its public area and id) */
static EVP_PKEY *
load_ak(const char *dir, TPM2B_PUBLIC *pub, char id[ATTEST_ID_LEN])
{
	char       p[4200];
	TPM2B_NAME n;
	EVP_PKEY  *k;

	path_in(p, sizeof(p), dir, "ak.pem");
	if ((k = load_key(p)) == NULL || soft_pub(k, false, pub) < 0 ||
	    tek_pub_name(pub, &n) < 0) {
		EVP_PKEY_free(k);
		return NULL;
	}
	hex_encode(n.name, n.size, id, ATTEST_ID_LEN);
	return k;
}

static int
print_obj(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	int   rc = s != NULL && printf("%s\n", s) > 0 ? 0 : 1;

	free(s);
	cJSON_Delete(o);
	return rc;
}

static int
cmd_new(const char *dir, const char *ekfile)
{
	EVP_PKEY    *ak = NULL, *ek = NULL;
	TPM2B_PUBLIC akp, ekp;
	TPM2B_NAME   n;
	char         p[4200], id[ATTEST_ID_LEN], hex[ATTEST_PUB_LEN];
	cJSON       *o, *d;
	int          rc = 1;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		return die("mkdir %s: %s", dir, strerror(errno));
	}
	ek = ekfile ? load_key(ekfile) : EVP_RSA_gen(2048);
	ak = EVP_RSA_gen(2048);
	if (ek == NULL || ak == NULL || soft_pub(ek, true, &ekp) < 0 ||
	    soft_pub(ak, false, &akp) < 0 || tek_pub_name(&akp, &n) < 0) {
		rc = die("%s: cannot make the keys%s", dir, "");
		goto out;
	}
	path_in(p, sizeof(p), dir, "ek.pem");
	if (save_key(p, ek) < 0) {
		rc = die("write %s: %s", p, strerror(errno));
		goto out;
	}
	path_in(p, sizeof(p), dir, "ak.pem");
	if (save_key(p, ak) < 0) {
		rc = die("write %s: %s", p, strerror(errno));
		goto out;
	}
	hex_encode(n.name, n.size, id, sizeof(id));
	o = cJSON_CreateObject();
	d = cJSON_AddObjectToObject(o, "device");
	cJSON_AddStringToObject(d, "device_id", id);
	(void) tek_pub_to_hex(&ekp, hex, sizeof(hex));
	cJSON_AddStringToObject(d, "ek_pub", hex);
	(void) tek_pub_to_hex(&akp, hex, sizeof(hex));
	cJSON_AddStringToObject(d, "ak_pub", hex);
	rc = print_obj(o);
out:
	EVP_PKEY_free(ak);
	EVP_PKEY_free(ek);
	return rc;
}

static int
cmd_answer(const char *dir, const char *chfile)
{
	TPM2B_ID_OBJECT        blob = {0};
	TPM2B_ENCRYPTED_SECRET sec = {0};
	TPM2B_PUBLIC           akp;
	TPM2B_NAME             n;
	EVP_PKEY              *ek = NULL, *ak = NULL;
	uint8_t                buf[1024], cred[128];
	size_t                 off = 0, clen = 0, blen = 0;
	char                   p[4200], id[ATTEST_ID_LEN], hex[300], *js = NULL;
	const cJSON           *b, *s;
	cJSON                 *o = NULL, *out;
	int                    len, rc = 1;

	if (read_file(chfile, 64 * 1024, &js, &blen) < 0 ||
	    (o = cJSON_ParseWithLength(js, blen)) == NULL) {
		rc = die("%s: cannot read the challenge%s", chfile, "");
		goto out;
	}
	b = cJSON_GetObjectItemCaseSensitive(o, "credential_blob");
	s = cJSON_GetObjectItemCaseSensitive(o, "secret");
	path_in(p, sizeof(p), dir, "ek.pem");
	ek = load_key(p);
	ak = load_ak(dir, &akp, id);
	if (!cJSON_IsString(b) || !cJSON_IsString(s) || ek == NULL ||
	    ak == NULL || tek_pub_name(&akp, &n) < 0) {
		rc = die("%s: no credential_blob/secret, or no keys in %s",
		         chfile, dir);
		goto out;
	}
	len = hex_decode_str(b->valuestring, buf, sizeof(buf));
	if (len < 0 || Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(buf, (size_t) len,
	                                                 &off, &blob) != 0) {
		rc = die("%s: bad credential_blob%s", chfile, "");
		goto out;
	}
	off = 0;
	len = hex_decode_str(s->valuestring, buf, sizeof(buf));
	if (len < 0 || Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(
	                   buf, (size_t) len, &off, &sec) != 0) {
		rc = die("%s: bad secret%s", chfile, "");
		goto out;
	}
	if (soft_activate(ek, &n, &blob, &sec, cred, &clen) < 0) {
		rc = die("%s: ActivateCredential failed (not for this EK and "
		         "AK)%s",
		         chfile, "");
		goto out;
	}
	hex_encode(cred, clen, hex, sizeof(hex));
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "device_id", id);
	cJSON_AddStringToObject(out, "credential", hex);
	rc = print_obj(out);
out:
	free(js);
	cJSON_Delete(o);
	EVP_PKEY_free(ek);
	EVP_PKEY_free(ak);
	return rc;
}

/* The VM's EK public area: from file (hex), else DIR/UUID.ek, made on
 * first use. */
static int
vm_ek(const char *dir, const char *uuid, const char *file, TPM2B_PUBLIC *ek)
{
	char   p[4200], hex[ATTEST_PUB_LEN], *buf = NULL;
	size_t len = 0;
	int    ret;

	if (file == NULL) {
		snprintf(p, sizeof(p), "%s/%s.ek", dir, uuid);
		file = p;
	}
	if (read_file(file, sizeof(hex), &buf, &len) == 0) {
		buf[strcspn(buf, "\n")] = '\0';
		ret = tek_pub_from_hex(buf, ek);
		free(buf);
		return ret;
	}
	if (file != p || soft_random_ek(ek) < 0 ||
	    tek_pub_to_hex(ek, hex, sizeof(hex)) < 0) {
		return -1;
	}
	strcat(hex, "\n");
	return durable_write(p, hex, strlen(hex), 0600);
}

static int
one_report(EVP_PKEY *ak, const TPM2B_PUBLIC *akp, const char *id,
           const char *dir, const char *uuid, const char *ekfile)
{
	TPM2B_PUBLIC ek;
	char         hex[ATTEST_PUB_LEN], pem[ATTEST_PEM_LEN];
	cJSON       *o, *d, *v;

	if (!uuid_valid(uuid)) {
		return die("%s is not a UUID%s", uuid, "");
	}
	if (vm_ek(dir, uuid, ekfile, &ek) < 0 ||
	    soft_ek_cert(ak, id, uuid, &ek, pem, sizeof(pem)) < 0) {
		return die("VM %s: cannot make its EK or certificate (%s)",
		           uuid, ekfile ? ekfile : dir);
	}
	o = cJSON_CreateObject();
	d = cJSON_AddObjectToObject(o, "device");
	cJSON_AddStringToObject(d, "device_id", id);
	(void) tek_pub_to_hex(akp, hex, sizeof(hex));
	cJSON_AddStringToObject(d, "ak_pub", hex);
	v = cJSON_AddObjectToObject(o, "vm");
	cJSON_AddStringToObject(v, "uuid", uuid);
	(void) tek_pub_to_hex(&ek, hex, sizeof(hex));
	cJSON_AddStringToObject(v, "ek_pub", hex);
	cJSON_AddStringToObject(v, "ek_cert", pem);
	return print_obj(o);
}

int
main(int argc, char **argv)
{
	TPM2B_PUBLIC akp;
	EVP_PKEY    *ak;
	char         id[ATTEST_ID_LEN], uuid[UUID_LEN];
	int          rc = 0;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		printf(
		    "usage: soft_device new DIR [--ek PEM] | answer DIR "
		    "CHALLENGE | report DIR UUID [--vm-ek FILE] | reports DIR "
		    "N PREFIX\n"
		    "A device with a software TPM for vtpm-verify tests and "
		    "benchmarks (keys in DIR).\n");
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "new") == 0) {
		return cmd_new(
		    argv[2],
		    argc == 5 && strcmp(argv[3], "--ek") == 0 ? argv[4] : NULL);
	}
	if (argc == 4 && strcmp(argv[1], "answer") == 0) {
		return cmd_answer(argv[2], argv[3]);
	}
	if ((argc == 4 || argc == 6) && strcmp(argv[1], "report") == 0) {
		if ((ak = load_ak(argv[2], &akp, id)) == NULL) {
			return die("%s: no AK (soft_device new first)%s",
			           argv[2], "");
		}
		rc = one_report(ak, &akp, id, argv[2], argv[3],
		                argc == 6 && strcmp(argv[4], "--vm-ek") == 0
		                    ? argv[5]
		                    : NULL);
		EVP_PKEY_free(ak);
		return rc;
	}
	if (argc == 5 && strcmp(argv[1], "reports") == 0) {
		long n = strtol(argv[3], NULL, 10);
		char num[24];

		if ((ak = load_ak(argv[2], &akp, id)) == NULL) {
			return die("%s: no AK (soft_device new first)%s",
			           argv[2], "");
		}
		for (long i = 0; i < n && rc == 0; i++) {
			snprintf(num, sizeof(num), "%012ld",
			         i % 1000000000000L);
			snprintf(uuid, sizeof(uuid), "%.23s-%.12s", argv[4],
			         num);
			rc = one_report(ak, &akp, id, argv[2], uuid, NULL);
		}
		EVP_PKEY_free(ak);
		return rc;
	}
	fprintf(stderr,
	        "usage: soft_device new DIR [--ek PEM] | answer DIR CHALLENGE "
	        "| report DIR UUID [--vm-ek FILE] | reports DIR N PREFIX\n");
	return 2;
}
