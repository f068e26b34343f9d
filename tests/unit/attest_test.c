/* attest_test.c: the broker's certificate pipeline without a TPM (the
 * AK's TPM2_Sign replaced by an RSASSA-SHA256 signature over the same
 * TBSCertificate with a software key), checked by the verifier's chain
 * code: a good chain, a tampered TBS, another AK, wrong VM / device /
 * key; the ECC P-256 EK's certificate; an EK certificate against a
 * --tpm-ca directory (root + intermediate, a missing intermediate,
 * another key); and AttestRequest/AttestReply carrying long PEM and hex
 * fields through the schema. The TPM path is in tests/integration/attest_*.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "sealer.h"
#include "tpm_ek.h"
#include "verify.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define VM "7d000000-0000-4000-8000-000000000001"

static EVP_PKEY    *cakey, *ak1, *ak2, *ek;
static X509        *cacert;
static TPM2B_PUBLIC ak1_pub, ak2_pub, ek_pub;
static char         id1[ATTEST_ID_LEN], id2[ATTEST_ID_LEN];
static char         cadir[] = "/tmp/attest_test.XXXXXX";

static EVP_PKEY *
rsa_pub(TPM2B_PUBLIC *pub, bool is_ek)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	BIGNUM   *n = NULL;

	assert_non_null(k);
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	if (is_ek) {
		tek_ek_template(pub);
	} else {
		memset(pub, 0, sizeof(*pub));
		pub->publicArea.type = TPM2_ALG_RSA;
		pub->publicArea.nameAlg = TPM2_ALG_SHA256;
		pub->publicArea.objectAttributes =
		    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
		    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
		    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
		pub->publicArea.parameters.rsaDetail.keyBits = 2048;
		pub->publicArea.parameters.rsaDetail.scheme.scheme =
		    TPM2_ALG_RSASSA;
		pub->publicArea.parameters.rsaDetail.scheme.details.rsassa
		    .hashAlg = TPM2_ALG_SHA256;
		pub->publicArea.parameters.rsaDetail.symmetric.algorithm =
		    TPM2_ALG_NULL;
		pub->publicArea.unique.rsa.size = 256;
	}
	assert_int_equal(
	    BN_bn2binpad(n, pub->publicArea.unique.rsa.buffer, 256), 256);
	BN_free(n);
	return k;
}

static void
dev_id(const TPM2B_PUBLIC *p, char *id)
{
	TPM2B_NAME n;

	assert_int_equal(tek_pub_name(p, &n), 0);
	hex_encode(n.name, n.size, id, ATTEST_ID_LEN);
}

static int
setup(void **state)
{
	char err[256];

	(void) state;
	assert_non_null(mkdtemp(cadir));
	if (vfy_ca_load(cadir, &cakey, &cacert, err, sizeof(err)) < 0) {
		fail_msg("CA in %s: %s", cadir, err);
	}
	ak1 = rsa_pub(&ak1_pub, false);
	ak2 = rsa_pub(&ak2_pub, false);
	ek = rsa_pub(&ek_pub, true);
	dev_id(&ak1_pub, id1);
	dev_id(&ak2_pub, id2);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(ak1);
	EVP_PKEY_free(ak2);
	EVP_PKEY_free(ek);
	X509_free(cacert);
	(void) remove_tree(cadir);
	return 0;
}

/* The broker's steps with a software AK; PEM into pem. flip: a byte of
 * the TBS to change after signing (-1: none). */
static void
ek_cert(EVP_PKEY *ak, const char *id, const char *vm, long flip, char *pem,
        size_t len)
{
	uint8_t        serial[16] = {0x41, 2, 3}, *tbs = NULL, *der = NULL;
	uint8_t        sig[512];
	size_t         tbslen, siglen = sizeof(sig), derlen;
	EVP_MD_CTX    *md = EVP_MD_CTX_new();
	const uint8_t *p;
	X509          *x;
	BIO           *b = BIO_new(BIO_s_mem());
	char          *data;
	long           n;

	assert_int_equal(attest_ek_tbs(ek, vm, id, serial, &tbs, &tbslen), 0);
	assert_true(tbslen <= ATTEST_TBS_MAX); /* fits one TPM2_Hash */
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ak),
	                 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen, tbs, tbslen), 1);
	if (flip >= 0) {
		tbs[flip] ^= 0x01;
	}
	assert_int_equal(
	    attest_cert_assemble(tbs, tbslen, sig, siglen, &der, &derlen), 0);
	p = der;
	x = d2i_X509(NULL, &p, (long) derlen);
	assert_non_null(x);
	assert_int_equal(p - der, (long) derlen);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	n = BIO_get_mem_data(b, &data);
	assert_true(n > 0 && (size_t) n < len);
	memcpy(pem, data, (size_t) n);
	pem[n] = '\0';
	BIO_free(b);
	X509_free(x);
	EVP_MD_CTX_free(md);
	OPENSSL_free(tbs);
	OPENSSL_free(der);
}

static void
ak_cert(const TPM2B_PUBLIC *ak, const char *id, char *pem)
{
	char err[256];

	assert_int_equal(vfy_issue_ak_cert(cakey, cacert, ak, id, pem,
	                                   ATTEST_PEM_LEN, err, sizeof(err)),
	                 0);
}

static void
test_chain_good(void **state)
{
	char a[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256];

	(void) state;
	ak_cert(&ak1_pub, id1, a);
	ek_cert(ak1, id1, VM, -1, e, sizeof(e));
	assert_int_equal(
	    vfy_check_ek_cert(cacert, a, e, &ek_pub, VM, id1, err, sizeof(err)),
	    0);
}

static void
test_chain_tampered(void **state)
{
	char a[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256] = "";

	(void) state;
	ak_cert(&ak1_pub, id1, a);
	ek_cert(ak1, id1, VM, 200, e, sizeof(e));
	assert_int_equal(
	    vfy_check_ek_cert(cacert, a, e, NULL, NULL, NULL, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "signature failure"));
}

static void
test_chain_other_ak(void **state)
{
	char a2[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256] = "";

	(void) state;
	/* signed by AK 2 but issued in AK 1's name */
	ak_cert(&ak1_pub, id1, a2);
	ek_cert(ak2, id1, VM, -1, e, sizeof(e));
	assert_int_equal(vfy_check_ek_cert(cacert, a2, e, NULL, NULL, NULL, err,
	                                   sizeof(err)),
	                 -1);
	/* signed by AK 2, checked against AK 1's certificate */
	ek_cert(ak2, id2, VM, -1, e, sizeof(e));
	assert_int_equal(vfy_check_ek_cert(cacert, a2, e, NULL, NULL, NULL, err,
	                                   sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "chain does not verify"));
}

static void
test_chain_names_and_key(void **state)
{
	char         a[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256] = "";
	TPM2B_PUBLIC other = ek_pub;

	(void) state;
	ak_cert(&ak1_pub, id1, a);
	ek_cert(ak1, id1, VM, -1, e, sizeof(e));
	assert_int_equal(
	    vfy_check_ek_cert(cacert, a, e, NULL,
	                      "7d000000-0000-4000-8000-000000000002", NULL, err,
	                      sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "does not name VM"));
	assert_int_equal(
	    vfy_check_ek_cert(cacert, a, e, NULL, NULL, id2, err, sizeof(err)),
	    -1);
	other.publicArea.unique.rsa.buffer[100] ^= 1;
	assert_int_equal(vfy_check_ek_cert(cacert, a, e, &other, NULL, NULL,
	                                   err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "another key"));
	/* an AK certificate from another CA */
	{
		EVP_PKEY *k2;
		X509     *c2;
		char      dir2[] = "/tmp/attest_test2.XXXXXX";

		assert_non_null(mkdtemp(dir2));
		assert_int_equal(vfy_ca_load(dir2, &k2, &c2, err, sizeof(err)),
		                 0);
		assert_int_equal(vfy_check_ek_cert(c2, a, e, NULL, NULL, NULL,
		                                   err, sizeof(err)),
		                 -1);
		EVP_PKEY_free(k2);
		X509_free(c2);
		(void) remove_tree(dir2);
	}
}

/* The ECC P-256 EK (template L-2): the broker's certificate carries the
 * EC key with keyUsage keyAgreement and chains like the RSA one. */
static void
test_chain_ecc(void **state)
{
	char         a[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256] = "";
	TPM2B_PUBLIC epub, other;
	EVP_PKEY    *ec = EVP_EC_gen("P-256"), *rsa_ek = ek;
	uint8_t      pt[65];
	size_t       ptlen = 0;
	X509        *x;

	(void) state;
	assert_non_null(ec);
	assert_true(EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY,
	                                            pt, sizeof(pt), &ptlen));
	tek_ek_template_alg(&epub, TPM2_ALG_ECC);
	memcpy(epub.publicArea.unique.ecc.x.buffer, pt + 1, 32);
	memcpy(epub.publicArea.unique.ecc.y.buffer, pt + 33, 32);
	ak_cert(&ak1_pub, id1, a);
	ek = ec; /* ek_cert certifies the suite's ek */
	ek_cert(ak1, id1, VM, -1, e, sizeof(e));
	ek = rsa_ek;
	assert_int_equal(
	    vfy_check_ek_cert(cacert, a, e, &epub, VM, id1, err, sizeof(err)),
	    0);
	x = vfy_pem_cert(e);
	assert_non_null(x);
	assert_true(X509_get_key_usage(x) & KU_KEY_AGREEMENT);
	assert_false(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT);
	X509_free(x);
	other = epub;
	other.publicArea.unique.ecc.x.buffer[5] ^= 1;
	assert_int_equal(vfy_check_ek_cert(cacert, a, e, &other, NULL, NULL,
	                                   err, sizeof(err)),
	                 -1);
	EVP_PKEY_free(ec);
}

/* --tpm-ca: an EK certificate chaining to a self-signed root through an
 * intermediate (here the CA and an AK certificate, CA:TRUE pathlen 0,
 * signing the EK certificate), both PEM files in the directory. */
static void
test_maker_chain(void **state)
{
	char         a[ATTEST_PEM_LEN], e[ATTEST_PEM_LEN], err[256] = "";
	char         dir[] = "/tmp/attest_maker.XXXXXX", path[300];
	FILE        *f;
	TPM2B_PUBLIC other = ek_pub;

	(void) state;
	assert_non_null(mkdtemp(dir));
	ak_cert(&ak1_pub, id1, a);
	ek_cert(ak1, id1, VM, -1, e, sizeof(e));
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, cacert), 1);
	fclose(f);
	/* root only: the intermediate is missing */
	assert_int_equal(
	    vfy_check_maker_cert(dir, e, &ek_pub, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unable to get local issuer certificate"));
	snprintf(path, sizeof(path), "%s/intermediate.crt", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(a, f);
	fclose(f);
	assert_int_equal(
	    vfy_check_maker_cert(dir, e, &ek_pub, err, sizeof(err)), 0);
	other.publicArea.unique.rsa.buffer[7] ^= 1;
	assert_int_equal(vfy_check_maker_cert(dir, e, &other, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "certifies another key"));
	assert_int_equal(vfy_check_maker_cert("/nonexistent-dir", e, &ek_pub,
	                                      err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "/nonexistent-dir"));
	(void) remove_tree(dir);
}

static void
test_messages_long_fields(void **state)
{
	struct attest_rep *in = calloc(1, sizeof(*in)),
	                  *out = calloc(1, sizeof(*out));
	enum msg_type t;
	char          err[256], *s;

	(void) state;
	snprintf(in->uuid, sizeof(in->uuid), VM);
	in->ok = true;
	ak_cert(&ak1_pub, id1, in->ak_cert);
	assert_int_equal(
	    tek_pub_to_hex(&ek_pub, in->ek_pub, sizeof(in->ek_pub)), 0);
	assert_true(strlen(in->ek_pub) > 512 && strlen(in->ak_cert) > 512);
	s = msg_encode(MSG_ATTEST_REP, in);
	assert_non_null(s);
	assert_int_equal(
	    msg_decode(s, strlen(s), MSG_ATTEST_REP, &t, out, err, sizeof(err)),
	    0);
	assert_string_equal(out->ek_pub, in->ek_pub); /* not cut at 512 */
	assert_string_equal(out->ak_cert, in->ak_cert);
	free(s);
	/* a request with an unknown op is refused */
	s = strdup("{\"type\":\"AttestRequest\",\"version\":1,\"op\":\"x\","
	           "\"uuid\":\"" VM "\"}");
	assert_int_equal(
	    msg_decode(s, strlen(s), MSG_ATTEST_REQ, &t, out, err, sizeof(err)),
	    -1);
	free(s);
	free(in);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chain_good),
	    cmocka_unit_test(test_chain_tampered),
	    cmocka_unit_test(test_chain_other_ak),
	    cmocka_unit_test(test_chain_names_and_key),
	    cmocka_unit_test(test_messages_long_fields),
	    cmocka_unit_test(test_chain_ecc),
	    cmocka_unit_test(test_maker_chain),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
