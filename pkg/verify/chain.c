/*
 * chain.c: the verifier's CA (an EC P-256 key and self-signed certificate
 * in the CA directory), AK certificates it issues after a successful
 * activation, and the check of a vTPM EK certificate chain
 * (vTPM EK <- AK <- CA), with the certified key and SAN names.
 */
#include "verify.h"
#include "common.h"
#include "tpm_ek.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static int
set_serial(X509 *x)
{
	uint8_t s[16];
	BIGNUM *bn;
	int     ok;

	if (RAND_bytes(s, sizeof(s)) != 1) {
		return -1;
	}
	s[0] &= 0x7f;
	bn = BN_bin2bn(s, sizeof(s), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -1;
}

static int
make_ca(const char *keyp, const char *crtp, char *err, size_t errlen)
{
	EVP_PKEY  *k = EVP_EC_gen("P-256");
	X509      *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	BIO       *b = NULL;
	char      *data;
	long       len;
	int        ret = -1;

	if (k == NULL || x == NULL || n == NULL || !X509_set_version(x, 2) ||
	    set_serial(x) < 0 ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	                                (const unsigned char *) "vtpm", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(
	        n, "CN", MBSTRING_ASC, (const unsigned char *) "vtpm-verify CA",
	        -1, -1, 0) ||
	    !X509_set_subject_name(x, n) || !X509_set_issuer_name(x, n) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 365 * 30, 0, NULL) ||
	    !X509_set_pubkey(x, k) ||
	    tek_x509_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") <
	        0 ||
	    tek_x509_add_ext(x, x, NID_key_usage,
	                     "critical,keyCertSign,cRLSign") < 0 ||
	    tek_x509_add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    !X509_sign(x, k, EVP_sha256())) {
		snprintf(err, errlen, "cannot create the CA");
		goto out;
	}
	/* the key: 0600, written durably */
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) ||
	    (len = BIO_get_mem_data(b, &data)) <= 0 ||
	    durable_write(keyp, data, (size_t) len, 0600) < 0) {
		snprintf(err, errlen, "write %s: %s", keyp, strerror(errno));
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509(b, x) ||
	    (len = BIO_get_mem_data(b, &data)) <= 0 ||
	    durable_write(crtp, data, (size_t) len, 0644) < 0) {
		snprintf(err, errlen, "write %s: %s", crtp, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(k);
	return ret;
}

int
vfy_ca_load(const char *dir, EVP_PKEY **key, X509 **cert, char *err,
            size_t errlen)
{
	char  keyp[PATH_LEN], crtp[PATH_LEN];
	FILE *f;

	*key = NULL;
	*cert = NULL;
	if (path_join(keyp, sizeof(keyp), "%s/ca.key", dir) < 0 ||
	    path_join(crtp, sizeof(crtp), "%s/ca.crt", dir) < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (access(keyp, F_OK) != 0) {
		if (mkdir_p(dir, 0700) < 0) {
			snprintf(err, errlen, "mkdir %s: %s", dir,
			         strerror(errno));
			return -1;
		}
		if (make_ca(keyp, crtp, err, errlen) < 0) {
			return -1;
		}
	}
	if ((f = fopen(keyp, "r")) == NULL ||
	    (*key = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "read %s: %s", keyp,
		         f ? "not a PEM key" : strerror(errno));
		if (f) {
			fclose(f);
		}
		return -1;
	}
	fclose(f);
	if ((f = fopen(crtp, "r")) == NULL ||
	    (*cert = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "read %s: %s", crtp,
		         f ? "not a PEM certificate" : strerror(errno));
		if (f) {
			fclose(f);
		}
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	fclose(f);
	return 0;
}

int
vfy_issue_ak_cert(EVP_PKEY *cakey, X509 *cacert, const TPM2B_PUBLIC *ak,
                  const char *device_id, char *pem, size_t pemlen, char *err,
                  size_t errlen)
{
	EVP_PKEY  *pk = tek_pub_to_pkey(ak);
	X509      *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	BIO       *b = NULL;
	char       cn[64], san[160], *data;
	long       len;
	int        ret = -1;

	tek_ak_cn(device_id, cn, sizeof(cn));
	snprintf(san, sizeof(san), "URI:urn:vtpm:device:%s", device_id);
	if (pk == NULL || x == NULL || n == NULL || !X509_set_version(x, 2) ||
	    set_serial(x) < 0 ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	                                (const unsigned char *) "vtpm", -1, -1,
	                                0) ||
	    !X509_NAME_add_entry_by_txt(
	        n, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0) ||
	    !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(cacert)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 365 * 30, 0, NULL) ||
	    !X509_set_pubkey(x, pk) ||
	    tek_x509_add_ext(x, cacert, NID_basic_constraints,
	                     "critical,CA:TRUE,pathlen:0") < 0 ||
	    tek_x509_add_ext(x, cacert, NID_key_usage,
	                     "critical,keyCertSign,digitalSignature") < 0 ||
	    tek_x509_add_ext(x, cacert, NID_subject_alt_name, san) < 0 ||
	    tek_x509_add_ext(x, cacert, NID_authority_key_identifier, "keyid") <
	        0 ||
	    !X509_sign(x, cakey, EVP_sha256())) {
		snprintf(err, errlen, "cannot issue the AK certificate");
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509(b, x) ||
	    (len = BIO_get_mem_data(b, &data)) <= 0 || (size_t) len >= pemlen) {
		snprintf(err, errlen, "cannot encode the AK certificate");
		goto out;
	}
	memcpy(pem, data, (size_t) len);
	pem[len] = '\0';
	ret = 0;
out:
	BIO_free(b);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ret;
}

X509 *
vfy_pem_cert(const char *pem)
{
	BIO  *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

/* Does x carry the URI san in its subjectAltName? */
static bool
has_uri(X509 *x, const char *uri)
{
	GENERAL_NAMES *names =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool found = false;

	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_URI &&
		    (size_t) ASN1_STRING_length(
		        g->d.uniformResourceIdentifier) == strlen(uri) &&
		    memcmp(
		        ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
		        uri, strlen(uri)) == 0) {
			found = true;
		}
	}
	GENERAL_NAMES_free(names);
	return found;
}

int
vfy_check_ek_cert(X509 *ca, const char *ak_pem, const char *ek_pem,
                  const TPM2B_PUBLIC *ek, const char *vm, const char *device,
                  char *err, size_t errlen)
{
	X509           *ak = vfy_pem_cert(ak_pem);
	X509           *x = vfy_pem_cert(ek_pem);
	X509_STORE     *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	EVP_PKEY *want = NULL;
	char      uri[160];
	int       ret = -1;

	if (ak == NULL || x == NULL) {
		snprintf(err, errlen, "%s is not a PEM certificate",
		         ak == NULL ? "the AK certificate"
		                    : "the EK certificate");
		goto out;
	}
	if (store == NULL || ctx == NULL || chain == NULL ||
	    !X509_STORE_add_cert(store, ca) || !sk_X509_push(chain, ak) ||
	    !X509_STORE_CTX_init(ctx, store, x, chain)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		snprintf(err, errlen,
		         "EK certificate chain does not verify: %s "
		         "(depth %d)",
		         X509_verify_cert_error_string(e),
		         X509_STORE_CTX_get_error_depth(ctx));
		goto out;
	}
	if (ek != NULL) {
		want = tek_pub_to_pkey(ek);
		if (want == NULL ||
		    EVP_PKEY_eq(want, X509_get0_pubkey(x)) != 1) {
			snprintf(err, errlen,
			         "the EK certificate certifies "
			         "another key than the vTPM's EK");
			goto out;
		}
	}
	if (vm != NULL) {
		snprintf(uri, sizeof(uri), "urn:uuid:%s", vm);
		if (!has_uri(x, uri)) {
			snprintf(err, errlen,
			         "the EK certificate does not name VM %s", vm);
			goto out;
		}
	}
	if (device != NULL) {
		snprintf(uri, sizeof(uri), "urn:vtpm:device:%s", device);
		if (!has_uri(x, uri) || !has_uri(ak, uri)) {
			snprintf(err, errlen,
			         "the certificates do not name device %s",
			         device);
			goto out;
		}
	}
	ret = 0;
out:
	EVP_PKEY_free(want);
	sk_X509_free(chain); /* not the certificates */
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ak);
	X509_free(x);
	return ret;
}

/* Every certificate in the PEM files of dir: self-signed ones into
 * store (anchors), the others onto inter. Returns how many, -1. */
static int
load_maker_dir(const char *dir, X509_STORE *store, STACK_OF(X509) * inter,
               char *err, size_t errlen)
{
	DIR           *d = opendir(dir);
	struct dirent *e;
	int            n = 0;

	if (d == NULL) {
		snprintf(err, errlen, "--tpm-ca %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char   path[PATH_LEN];
		FILE  *f;
		X509  *x;

		if (len < 5 || (strcmp(e->d_name + len - 4, ".pem") != 0 &&
		                strcmp(e->d_name + len - 4, ".crt") != 0)) {
			continue;
		}
		if (path_join(path, sizeof(path), "%s/%s", dir, e->d_name) <
		        0 ||
		    (f = fopen(path, "r")) == NULL) {
			continue;
		}
		while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
			bool self = X509_check_issued(x, x) == X509_V_OK;

			if (self ? !X509_STORE_add_cert(store, x)
			         : !sk_X509_push(inter, x)) {
				X509_free(x);
				continue;
			}
			if (self) {
				X509_free(x); /* the store holds a reference */
			}
			n++;
		}
		ERR_clear_error(); /* the end of the file */
		fclose(f);
	}
	closedir(d);
	return n;
}

int
vfy_check_maker_cert(const char *dir, const char *pem, const TPM2B_PUBLIC *ek,
                     char *err, size_t errlen)
{
	X509           *x = vfy_pem_cert(pem);
	X509_STORE     *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *inter = sk_X509_new_null();
	EVP_PKEY *want = NULL;
	int       n, ret = -1;

	if (x == NULL) {
		snprintf(err, errlen,
		         "the hardware EK certificate is not a PEM "
		         "certificate");
		goto out;
	}
	if (store == NULL || ctx == NULL || inter == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((n = load_maker_dir(dir, store, inter, err, errlen)) < 0) {
		goto out;
	}
	if (n == 0) {
		snprintf(err, errlen, "--tpm-ca %s holds no PEM certificate",
		         dir);
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, store, x, inter)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		snprintf(err, errlen,
		         "hardware EK certificate does not chain to a TPM "
		         "maker CA in %s: %s (depth %d)",
		         dir, X509_verify_cert_error_string(e),
		         X509_STORE_CTX_get_error_depth(ctx));
		goto out;
	}
	want = tek_pub_to_pkey(ek);
	if (want == NULL || EVP_PKEY_eq(want, X509_get0_pubkey(x)) != 1) {
		snprintf(err, errlen,
		         "the hardware EK certificate certifies another key "
		         "than the device's EK");
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_free(want);
	sk_X509_pop_free(inter, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(x);
	return ret;
}
