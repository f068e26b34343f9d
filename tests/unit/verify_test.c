/* verify_test.c: the verifier's parts, called directly: MakeCredential
 * unwrapped again in software (RSA-OAEP seed, KDFa, HMAC, AES-CFB, as a
 * TPM's ActivateCredential does), the SQLite registry and its clone
 * bindings, the AK check, quote checks against a software-signed
 * TPMS_ATTEST, the EK templates L-1/L-2, the attestation registry ops
 * (nonces, reference PCRs, hardware EKs) and a registry of the original
 * schema upgraded on open. The real-TPM round trips are in
 * tests/integration/attest_ak.sh and attest_maker.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tpm_ek.h"
#include "verify.h"

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

/* An RSA key and its TPM2B_PUBLIC in the EK template. */
static EVP_PKEY *
ek_like(TPM2B_PUBLIC *pub)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	BIGNUM   *n = NULL;

	assert_non_null(k);
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	tek_ek_template(pub);
	assert_int_equal(
	    BN_bn2binpad(n, pub->publicArea.unique.rsa.buffer, 256), 256);
	BN_free(n);
	return k;
}

static EVP_PKEY    *ek_key;
static TPM2B_PUBLIC ek_pub;

static int
setup(void **state)
{
	(void) state;
	ek_key = ek_like(&ek_pub);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	EVP_PKEY_free(ek_key);
	return 0;
}

/* ActivateCredential in software: 0 and the credential, or -1. */
static int
activate_sw(EVP_PKEY *k, const TPM2B_NAME *name, const TPM2B_ID_OBJECT *blob,
            const TPM2B_ENCRYPTED_SECRET *sec, uint8_t *cred, size_t *credlen)
{
	EVP_PKEY_CTX   *pc = EVP_PKEY_CTX_new(k, NULL);
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	uint8_t         seed[256], sym[16], hk[32], mac[32], iv[16] = {0};
	uint8_t         out[128];
	size_t          slen = sizeof(seed);
	int             n = 0, f = 0, ret = -1;
	unsigned        ml = 0;
	char           *label = OPENSSL_memdup("IDENTITY", 9);

	if (EVP_PKEY_decrypt_init(pc) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) <= 0 ||
	    EVP_PKEY_decrypt(pc, seed, &slen, sec->secret, sec->size) <= 0) {
		goto out;
	}
	assert_int_equal(slen, 32);
	assert_int_equal(vfy_kdfa(seed, 32, "STORAGE", name->name, name->size,
	                          NULL, 0, sym, 128),
	                 0);
	assert_int_equal(
	    vfy_kdfa(seed, 32, "INTEGRITY", NULL, 0, NULL, 0, hk, 256), 0);
	/* HMAC(hk, encIdentity || name) must match */
	{
		uint8_t buf[256];
		size_t  el = blob->size - 34;

		memcpy(buf, blob->credential + 34, el);
		memcpy(buf + el, name->name, name->size);
		HMAC(EVP_sha256(), hk, 32, buf, el + name->size, mac, &ml);
		if (blob->credential[1] != 32 ||
		    memcmp(mac, blob->credential + 2, 32) != 0) {
			goto out;
		}
		EVP_DecryptInit_ex(cc, EVP_aes_128_cfb(), NULL, sym, iv);
		EVP_DecryptUpdate(cc, out, &n, blob->credential + 34, (int) el);
		EVP_DecryptFinal_ex(cc, out + n, &f);
	}
	*credlen = (size_t) (out[0] << 8 | out[1]);
	memcpy(cred, out + 2, *credlen);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(pc);
	return ret;
}

static void
test_make_credential_roundtrip(void **state)
{
	TPM2B_NAME             name = {.size = 34};
	TPM2B_ID_OBJECT        blob;
	TPM2B_ENCRYPTED_SECRET sec;
	uint8_t                cred[32], got[64];
	size_t                 glen = 0;
	char                   err[256];

	(void) state;
	memset(name.name, 0x5a, sizeof(name.name));
	name.name[0] = 0;
	name.name[1] = 0x0b;
	for (int i = 0; i < 32; i++) {
		cred[i] = (uint8_t) i;
	}
	assert_int_equal(vfy_make_credential(&ek_pub, &name, cred, 32, &blob,
	                                     &sec, err, sizeof(err)),
	                 0);
	assert_int_equal(sec.size, 256);
	assert_int_equal(blob.size, 2 + 32 + 2 + 32);
	assert_int_equal(activate_sw(ek_key, &name, &blob, &sec, got, &glen),
	                 0);
	assert_int_equal(glen, 32);
	assert_memory_equal(got, cred, 32);
	/* for another object name the HMAC does not hold */
	name.name[5] ^= 1;
	assert_int_equal(activate_sw(ek_key, &name, &blob, &sec, got, &glen),
	                 -1);
}

static void
test_make_credential_refuses(void **state)
{
	TPM2B_PUBLIC           bad = ek_pub;
	TPM2B_NAME             name = {.size = 34};
	TPM2B_ID_OBJECT        blob;
	TPM2B_ENCRYPTED_SECRET sec;
	uint8_t                cred[32] = {1};
	char                   err[256] = "";

	(void) state;
	bad.publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 256;
	assert_int_equal(vfy_make_credential(&bad, &name, cred, 32, &blob, &sec,
	                                     err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "AES-128-CFB"));
	assert_int_equal(vfy_make_credential(&ek_pub, &name, cred, 0, &blob,
	                                     &sec, err, sizeof(err)),
	                 -1);
}

static void
test_kdfa_shape(void **state)
{
	uint8_t key[32] = {7}, a[64], b[64], c[16];

	(void) state;
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, a, 512),
	                 0);
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, b, 512),
	                 0);
	assert_memory_equal(a, b, 64); /* deterministic, two HMAC blocks */
	assert_int_equal(
	    vfy_kdfa(key, 32, "INTEGRITY", NULL, 0, NULL, 0, b, 512), 0);
	assert_memory_not_equal(a, b, 64);
	/* the bit count is an input: a 128-bit key is not a prefix */
	assert_int_equal(vfy_kdfa(key, 32, "STORAGE", NULL, 0, NULL, 0, c, 128),
	                 0);
	assert_memory_not_equal(a, c, 16);
}

static void
test_is_ak_and_templates(void **state)
{
	TPM2B_PUBLIC ak = ek_pub;

	(void) state;
	assert_true(tek_is_ek_template(&ek_pub));
	assert_false(vfy_is_ak(&ek_pub)); /* a decrypt key */
	ak.publicArea.objectAttributes =
	    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	assert_true(vfy_is_ak(&ak));
	assert_false(tek_is_ek_template(&ak));
	ak.publicArea.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM;
	assert_false(vfy_is_ak(&ak)); /* exportable: no AK */
}

static void
test_pub_hex_and_name(void **state)
{
	char         hex[ATTEST_PUB_LEN];
	TPM2B_PUBLIC back;
	TPM2B_NAME   n1, n2;

	(void) state;
	assert_int_equal(tek_pub_to_hex(&ek_pub, hex, sizeof(hex)), 0);
	assert_int_equal(tek_pub_from_hex(hex, &back), 0);
	assert_int_equal(tek_pub_name(&ek_pub, &n1), 0);
	assert_int_equal(tek_pub_name(&back, &n2), 0);
	assert_int_equal(n1.size, 34);
	assert_memory_equal(n1.name, n2.name, 34);
	hex[10] = 'x';
	assert_int_equal(tek_pub_from_hex(hex, &back), -1);
	assert_int_equal(tek_pub_from_hex("0102", &back), -1);
}

static int n_alerts;

static void
count_alert(void *arg, const char *ek, const char *first, const char *second,
            const char *vm, int64_t at)
{
	(void) arg;
	assert_string_equal(ek, "ek1");
	assert_string_equal(first, "dev-a");
	assert_string_equal(second, "dev-b");
	assert_string_equal(vm, "vm");
	assert_true(at > 0);
	n_alerts++;
}

static void
test_registry_bindings(void **state)
{
	struct registry   r;
	struct vfy_device d, g;
	char err[256], path[] = "/tmp/verify_test.XXXXXX", other[80];
	int  fd = mkstemp(path);

	(void) state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "dev-a");
	snprintf(d.ek_pub, sizeof(d.ek_pub), "00");
	snprintf(d.ak_pub, sizeof(d.ak_pub), "11");
	snprintf(d.state, sizeof(d.state), "pending");
	assert_int_equal(r.ops->device_put(r.h, &d, err, sizeof(err)), 0);
	assert_int_equal(r.ops->device_get(r.h, "dev-a", &g, err, sizeof(err)),
	                 1);
	assert_string_equal(g.state, "pending");
	assert_int_equal(r.ops->device_get(r.h, "dev-x", &g, err, sizeof(err)),
	                 0);
	/* first sighting, then the same device again: no clone */
	assert_int_equal(r.ops->bind(r.h, "ek1", "dev-a", "vm", other,
	                             sizeof(other), err, sizeof(err)),
	                 0);
	assert_int_equal(r.ops->bind(r.h, "ek1", "dev-a", "vm", other,
	                             sizeof(other), err, sizeof(err)),
	                 0);
	/* another EK on another device: no clone */
	assert_int_equal(r.ops->bind(r.h, "ek2", "dev-b", "vm2", other,
	                             sizeof(other), err, sizeof(err)),
	                 0);
	/* ek1 behind dev-b: clone, naming dev-a */
	assert_int_equal(r.ops->bind(r.h, "ek1", "dev-b", "vm", other,
	                             sizeof(other), err, sizeof(err)),
	                 1);
	assert_string_equal(other, "dev-a");
	assert_int_equal(r.ops->alert_count(r.h, err, sizeof(err)), 0);
	assert_int_equal(r.ops->alert_add(r.h, "ek1", "dev-a", "dev-b", "vm",
	                                  err, sizeof(err)),
	                 0);
	assert_int_equal(r.ops->alert_count(r.h, err, sizeof(err)), 1);
	n_alerts = 0;
	assert_int_equal(
	    r.ops->alert_list(r.h, count_alert, NULL, err, sizeof(err)), 0);
	assert_int_equal(n_alerts, 1);
	vfy_registry_close(&r);
	/* persistent: a reopen sees the same */
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(r.ops->alert_count(r.h, err, sizeof(err)), 1);
	vfy_registry_close(&r);
	assert_int_equal(
	    vfy_registry_open(&r, "postgres://x/y", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "registry_ops"));
	unlink(path);
	{
		char p2[300];
		snprintf(p2, sizeof(p2), "%s-wal", path);
		unlink(p2);
		snprintf(p2, sizeof(p2), "%s-shm", path);
		unlink(p2);
	}
}

/* ---- quotes ---- */

/* A TPMS_ATTEST quote over mask with values and nonce, signed
 * RSASSA-SHA256 by key (as the TPM's AK does). */
static void
make_quote(EVP_PKEY *key, const uint8_t *nonce, size_t nlen, uint32_t mask,
           const uint8_t values[16][32], uint8_t *att, size_t *alen,
           uint8_t *sig, size_t *slen)
{
	TPMS_ATTEST a;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t     cat[16 * 32];
	size_t      n = 0, off = 0;

	memset(&a, 0, sizeof(a));
	a.magic = TPM2_GENERATED_VALUE;
	a.type = TPM2_ST_ATTEST_QUOTE;
	a.qualifiedSigner.size = 34;
	a.extraData.size = (UINT16) nlen;
	memcpy(a.extraData.buffer, nonce, nlen);
	a.clockInfo.clock = 12345;
	a.clockInfo.resetCount = 3;
	a.clockInfo.safe = 1;
	a.attested.quote.pcrSelect.count = 1;
	a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < 3; i++) {
		a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[i] =
		    (mask >> (8 * i)) & 0xff;
	}
	for (int i = 0; i < 16; i++) {
		if (mask & (1u << i)) {
			memcpy(cat + n, values[i], 32);
			n += 32;
		}
	}
	a.attested.quote.pcrDigest.size = 32;
	SHA256(cat, n, a.attested.quote.pcrDigest.buffer);
	assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(&a, att, *alen, &off), 0);
	*alen = off;
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
	                 1);
	assert_int_equal(EVP_DigestSign(md, sig, slen, att, *alen), 1);
	EVP_MD_CTX_free(md);
}

/* The AK's public area for key (any RSA key will do here). */
static void
ak_like(EVP_PKEY *k, TPM2B_PUBLIC *pub)
{
	BIGNUM *n = NULL;

	memset(pub, 0, sizeof(*pub));
	pub->publicArea.type = TPM2_ALG_RSA;
	pub->publicArea.nameAlg = TPM2_ALG_SHA256;
	pub->publicArea.parameters.rsaDetail.keyBits = 2048;
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	pub->publicArea.unique.rsa.size = 256;
	assert_int_equal(
	    BN_bn2binpad(n, pub->publicArea.unique.rsa.buffer, 256), 256);
	BN_free(n);
}

static void
test_quote_checks(void **state)
{
	TPM2B_PUBLIC     ak;
	struct vfy_quote q;
	uint8_t          values[16][32], ref[16][32], nonce[32], other[32];
	uint8_t          att[1024], sig[512];
	size_t           alen = sizeof(att), slen = sizeof(sig);
	uint32_t         mask = 0x7fdf; /* 0-4,6-14 */
	char             err[256];

	(void) state;
	ak_like(ek_key, &ak); /* the suite's RSA key signs as "AK" */
	for (int i = 0; i < 16; i++) {
		memset(values[i], i + 1, 32);
	}
	memset(nonce, 0xab, sizeof(nonce));
	memset(other, 0xcd, sizeof(other));
	make_quote(ek_key, nonce, sizeof(nonce), mask,
	           (const uint8_t(*)[32]) values, att, &alen, sig, &slen);
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 0);
	assert_int_equal(q.mask, mask);
	assert_int_equal(q.reset_count, 3);
	/* another nonce */
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, other,
	                                 sizeof(other), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "another nonce"));
	/* a flipped signature bit */
	sig[7] ^= 1;
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "signature does not verify"));
	sig[7] ^= 1;
	/* a value that is not the quoted one */
	values[7][0] ^= 1;
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "pcrDigest differs"));
	/* values named for another PCR set */
	assert_int_equal(vfy_check_quote(&ak, att, alen, sig, slen, nonce,
	                                 sizeof(nonce), mask & ~1u,
	                                 (const uint8_t(*)[32]) values, &q, err,
	                                 sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "quoted, values given for"));
	/* against a reference: PCR 7 (changed above) and the unquoted 15 */
	memcpy(ref, values, sizeof(ref));
	ref[7][0] ^= 1;
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) values,
	                                 mask, (const uint8_t(*)[32]) ref),
	                 1u << 7);
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) values,
	                                 mask | 1u << 15,
	                                 (const uint8_t(*)[32]) ref),
	                 1u << 7 | 1u << 15);
	assert_int_equal(vfy_pcrs_differ(mask, (const uint8_t(*)[32]) ref, mask,
	                                 (const uint8_t(*)[32]) ref),
	                 0);
}

static void
test_pcrs_parse(void **state)
{
	uint8_t  v[16][32];
	uint32_t mask;
	char     err[256], h[65];
	cJSON   *o = cJSON_CreateObject();

	(void) state;
	memset(h, 'a', 64);
	h[64] = '\0';
	cJSON_AddStringToObject(o, "0", h);
	cJSON_AddStringToObject(o, "14", h);
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), 0);
	assert_int_equal(mask, 1u | 1u << 14);
	assert_int_equal(v[14][31], 0xaa);
	cJSON_AddStringToObject(o, "16", h);
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"16\" is not a PCR index"));
	cJSON_DeleteItemFromObject(o, "16");
	cJSON_AddStringToObject(o, "3", "abcd");
	assert_int_equal(vfy_pcrs_parse(o, &mask, v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "PCR 3 is not 64 hex digits"));
	cJSON_Delete(o);
}

static void
test_ek_templates_ecc(void **state)
{
	TPM2B_PUBLIC rsa, ecc;
	EVP_PKEY    *k, *pk;
	uint8_t      pt[65];
	size_t       ptlen = 0;

	(void) state;
	tek_ek_template_alg(&rsa, TPM2_ALG_RSA);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	assert_int_equal(tek_ek_alg(&rsa), TPM2_ALG_RSA);
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_ECC);
	assert_true(tek_is_ek_template(&rsa));
	assert_false(tek_is_ek_template(&ecc));
	ecc.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_NULL);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	ecc.publicArea.objectAttributes |= TPMA_OBJECT_SIGN_ENCRYPT;
	assert_int_equal(tek_ek_alg(&ecc), TPM2_ALG_NULL);
	/* an ECC public area as an OpenSSL key: the same point */
	k = EVP_EC_gen("P-256");
	assert_non_null(k);
	assert_true(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY,
	                                            pt, sizeof(pt), &ptlen));
	assert_int_equal(ptlen, 65);
	tek_ek_template_alg(&ecc, TPM2_ALG_ECC);
	memcpy(ecc.publicArea.unique.ecc.x.buffer, pt + 1, 32);
	memcpy(ecc.publicArea.unique.ecc.y.buffer, pt + 33, 32);
	pk = tek_pub_to_pkey(&ecc);
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_eq(pk, k), 1);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(k);
}

static void
test_registry_attest_tables(void **state)
{
	struct registry r;
	uint8_t         v[16][32], g[16][32];
	uint32_t        mask;
	char err[256], path[] = "/tmp/verify_test2.XXXXXX", cert[64], tr[16];
	char p2[300];
	int  fd = mkstemp(path);

	(void) state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	/* nonces: once, for the device they were issued to */
	assert_int_equal(r.ops->nonce_add(r.h, "dev-a", "n1", err, sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-b", "n1", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n2", err, sizeof(err)), 0);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n1", err, sizeof(err)), 1);
	assert_int_equal(
	    r.ops->nonce_take(r.h, "dev-a", "n1", err, sizeof(err)), 2);
	/* reference PCRs: replaced as a whole */
	assert_int_equal(
	    r.ops->ref_get(r.h, "dev-a", &mask, g, err, sizeof(err)), 0);
	memset(v, 0x11, sizeof(v));
	assert_int_equal(r.ops->ref_put(r.h, "dev-a", 0x3,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	v[4][0] = 0x22;
	assert_int_equal(r.ops->ref_put(r.h, "dev-a", 0x10,
	                                (const uint8_t(*)[32]) v, err,
	                                sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->ref_get(r.h, "dev-a", &mask, g, err, sizeof(err)), 1);
	assert_int_equal(mask, 0x10);
	assert_memory_equal(g[4], v[4], 32);
	/* hardware EK */
	assert_int_equal(r.ops->hw_ek_get(r.h, "dev-a", cert, sizeof(cert), tr,
	                                  sizeof(tr), err, sizeof(err)),
	                 0);
	assert_int_equal(
	    r.ops->hw_ek_put(r.h, "dev-a", "PEM", "maker", err, sizeof(err)),
	    0);
	assert_int_equal(r.ops->hw_ek_get(r.h, "dev-a", cert, sizeof(cert), tr,
	                                  sizeof(tr), err, sizeof(err)),
	                 1);
	assert_string_equal(tr, "maker");
	vfy_registry_close(&r);
	/* a registry of the original schema gets the new tables on open and
	 * keeps its data */
	{
		char cmd[600];

		unlink(path);
		snprintf(
		    cmd, sizeof(cmd),
		    "python3 -c \"import sqlite3; c = sqlite3.connect('%s'); "
		    "c.execute('CREATE TABLE alerts(ek_fp TEXT NOT NULL, "
		    "first_device TEXT NOT NULL, second_device TEXT NOT "
		    "NULL, vm TEXT NOT NULL, at INTEGER NOT NULL)'); "
		    "c.execute(\\\"INSERT INTO alerts "
		    "VALUES('e','a','b','v',1)\\\"); "
		    "c.commit()\"",
		    path);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(vfy_registry_open(&r, path, err, sizeof(err)), 0);
	assert_int_equal(r.ops->alert_count(r.h, err, sizeof(err)), 1);
	assert_int_equal(r.ops->nonce_add(r.h, "dev-a", "n1", err, sizeof(err)),
	                 0);
	vfy_registry_close(&r);
	unlink(path);
	snprintf(p2, sizeof(p2), "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s-shm", path);
	unlink(p2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_make_credential_roundtrip),
	    cmocka_unit_test(test_make_credential_refuses),
	    cmocka_unit_test(test_kdfa_shape),
	    cmocka_unit_test(test_is_ak_and_templates),
	    cmocka_unit_test(test_pub_hex_and_name),
	    cmocka_unit_test(test_registry_bindings),
	    cmocka_unit_test(test_quote_checks),
	    cmocka_unit_test(test_pcrs_parse),
	    cmocka_unit_test(test_ek_templates_ecc),
	    cmocka_unit_test(test_registry_attest_tables),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
