/*
 * escrow_fmt.c: the recovery-escrow record and its RSA-OAEP-SHA256 wrap,
 * shared by the broker (writes, recovers) and vtpm-verify (unwraps with
 * the controller key). docs/updates.md has the flow.
 */
#include "keyfmt.h"
#include "tpm_ek.h"
#include "common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

int
escrow_unhex(const char *s, uint8_t *out, size_t max, size_t *n)
{
	size_t len = strlen(s);
	int    got;

	/* a file or a paste may end in a newline */
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ')) {
		len--;
	}
	if ((got = hex_decode(s, len, out, max)) < 0) {
		return -1;
	}
	*n = (size_t) got;
	return 0;
}

int
escrow_fingerprint(EVP_PKEY *k, char fp[65])
{
	unsigned char *der = NULL, md[32];
	unsigned int   mdlen = 0;
	int            n = i2d_PUBKEY(k, &der);

	if (n <= 0 ||
	    EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return -1;
	}
	OPENSSL_free(der);
	hex_encode(md, 32, fp, 65);
	return 0;
}

int
escrow_load_pubkey(const char *path, EVP_PKEY **out, char fp[65], char *err,
                   size_t errlen)
{
	FILE     *f = fopen(path, "r");
	EVP_PKEY *k;

	*out = NULL;
	if (f == NULL) {
		strfmt(err, errlen, "escrow key %s: %s", path, strerror(errno));
		return -1;
	}
	k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(k) < 2048) {
		strfmt(err, errlen,
		       "escrow key %s: not an RSA public key of 2048 bits or "
		       "more (PEM)",
		       path);
		EVP_PKEY_free(k);
		return -1;
	}
	if (escrow_fingerprint(k, fp) < 0) {
		strfmt(err, errlen, "escrow key %s: cannot encode it", path);
		EVP_PKEY_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

static EVP_PKEY_CTX *
oaep_ctx(EVP_PKEY *k, bool enc)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);

	if (c == NULL ||
	    (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) != 1) {
		EVP_PKEY_CTX_free(c);
		return NULL;
	}
	return c;
}

int
escrow_wrap(EVP_PKEY *pub, const uint8_t *in, size_t inlen, uint8_t *out,
            size_t max, size_t *outlen)
{
	EVP_PKEY_CTX *c = oaep_ctx(pub, true);
	int           rc = -1;

	*outlen = max;
	if (c != NULL && EVP_PKEY_encrypt(c, out, outlen, in, inlen) == 1) {
		rc = 0;
	}
	EVP_PKEY_CTX_free(c);
	return rc;
}

int
escrow_unwrap(EVP_PKEY *priv, const uint8_t *in, size_t inlen, uint8_t *master)
{
	EVP_PKEY_CTX *c = oaep_ctx(priv, false);
	uint8_t      *buf = secmem_alloc(ESCROW_WRAP_MAX);
	size_t        n = ESCROW_WRAP_MAX;
	int           rc = -1;

	if (c != NULL && buf != NULL &&
	    EVP_PKEY_decrypt(c, buf, &n, in, inlen) == 1 &&
	    n == SEAL_MASTER_LEN) {
		memcpy(master, buf, SEAL_MASTER_LEN);
		rc = 0;
	}
	if (buf != NULL) {
		secmem_free(buf, ESCROW_WRAP_MAX);
	}
	EVP_PKEY_CTX_free(c);
	return rc;
}

int
escrow_master_id(const uint8_t *master, char id[65])
{
	static const uint8_t info[] = "vtpm-escrow-id-v1";
	uint8_t              out[32];

	if (kdf_hkdf_sha256(master, SEAL_MASTER_LEN, NULL, 0, info,
	                    sizeof(info) - 1, out, sizeof(out)) < 0) {
		return -1;
	}
	hex_encode(out, sizeof(out), id, 65);
	return 0;
}

/* The escrow record as written by escrow_file_store. */
struct escrow_rec {
	int64_t version;
	int     alg;
	uint8_t controller_key[32];
	uint8_t master_id[32];
	uint8_t wrapped[ESCROW_WRAP_MAX];
	size_t  wlen;
};

static const char *const escrow_algs[] = {"RSA-OAEP-SHA256", NULL};

static const struct field escrow_rec_fields[] = {
    FINT(struct escrow_rec, version, FF_REQUIRED, 1, 1),
    FENUM(struct escrow_rec, alg, FF_REQUIRED, escrow_algs, 0),
    FHEX(struct escrow_rec, controller_key, FF_REQUIRED),
    FHEX(struct escrow_rec, master_id, FF_REQUIRED),
    FHEXVAR(struct escrow_rec, wrapped, wlen, FF_REQUIRED, 1),
};
static const struct schema escrow_rec_schema =
    SCHEMA("escrow record", MSG_NONE, struct escrow_rec, escrow_rec_fields);

int
escrow_file_store(const char *path, const struct escrow_file *f)
{
	struct escrow_rec r = {.version = 1, .alg = 0, .wlen = f->wlen};
	int               rc = -1;

	if (f->wlen <= sizeof(r.wrapped) &&
	    hex_decode_exact(f->key_fp, r.controller_key,
	                     sizeof(r.controller_key)) == 0 &&
	    hex_decode_exact(f->master_id, r.master_id, sizeof(r.master_id)) ==
	        0) {
		memcpy(r.wrapped, f->wrapped, f->wlen);
		rc = schema_store_file(path, &escrow_rec_schema, &r, 0600);
	}
	explicit_bzero(&r, sizeof(r));
	return rc;
}

int
escrow_file_load(const char *path, struct escrow_file *f, char *err,
                 size_t errlen)
{
	struct escrow_rec r;

	memset(f, 0, sizeof(*f));
	if (schema_load_file(path, 16384, &escrow_rec_schema, &r, err, errlen) <
	    0) {
		return -1;
	}
	hex_encode(r.controller_key, sizeof(r.controller_key), f->key_fp,
	           sizeof(f->key_fp));
	hex_encode(r.master_id, sizeof(r.master_id), f->master_id,
	           sizeof(f->master_id));
	memcpy(f->wrapped, r.wrapped, r.wlen);
	f->wlen = r.wlen;
	explicit_bzero(&r, sizeof(r));
	return 0;
}
