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
	char   hex[2 * ESCROW_WRAP_MAX + 1]; /* the largest thing we read */
	size_t len = strlen(s);
	int    got;

	/* a file or a paste may end in a newline */
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ')) {
		len--;
	}

	if (len > 2 * max || len >= sizeof(hex)) {
		return -1;
	}
	memcpy(hex, s, len);
	hex[len] = '\0';
	if ((got = tek_unhex(hex, out, max)) < 0) {
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
	tek_hex(md, 32, fp, 65);
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
	tek_hex(out, sizeof(out), id, 65);
	return 0;
}

int
escrow_file_store(const char *path, const struct escrow_file *f)
{
	char   hex[2 * ESCROW_WRAP_MAX + 1], *txt;
	cJSON *o = cJSON_CreateObject();
	int    rc = -1;

	tek_hex(f->wrapped, f->wlen, hex, 2 * f->wlen + 1);
	if (o == NULL || !cJSON_AddNumberToObject(o, "version", 1) ||
	    !cJSON_AddStringToObject(o, "alg", "RSA-OAEP-SHA256") ||
	    !cJSON_AddStringToObject(o, "controller_key", f->key_fp) ||
	    !cJSON_AddStringToObject(o, "master_id", f->master_id) ||
	    !cJSON_AddStringToObject(o, "wrapped", hex) ||
	    (txt = cJSON_Print(o)) == NULL) {
		cJSON_Delete(o);
		return -1;
	}
	rc = durable_write(path, txt, strlen(txt), 0600);
	free(txt);
	cJSON_Delete(o);
	return rc;
}

int
escrow_file_load(const char *path, struct escrow_file *f, char *err,
                 size_t errlen)
{
	char        *txt = NULL;
	size_t       len;
	cJSON       *o;
	const cJSON *fp, *id, *w;
	int          rc = -1;

	memset(f, 0, sizeof(*f));
	if (read_file(path, 16384, &txt, &len) < 0) {
		strfmt(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	o = cJSON_ParseWithLength(txt, len);
	fp = cJSON_GetObjectItemCaseSensitive(o, "controller_key");
	id = cJSON_GetObjectItemCaseSensitive(o, "master_id");
	w = cJSON_GetObjectItemCaseSensitive(o, "wrapped");
	if (!cJSON_IsString(fp) || strlen(fp->valuestring) != 64 ||
	    !cJSON_IsString(id) || strlen(id->valuestring) != 64 ||
	    !cJSON_IsString(w) ||
	    escrow_unhex(w->valuestring, f->wrapped, sizeof(f->wrapped),
	                 &f->wlen) < 0) {
		strfmt(err, errlen, "%s: not an escrow record", path);
		goto out;
	}
	memcpy(f->key_fp, fp->valuestring, 65);
	memcpy(f->master_id, id->valuestring, 65);
	rc = 0;
out:
	cJSON_Delete(o);
	free(txt);
	return rc;
}
