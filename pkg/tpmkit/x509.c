/*
 * x509.c: certificate helpers shared by the broker, the verifier and
 * vtpmctl: the AK common name, extensions, DER to PEM.
 */
#include "tpm_ek.h"

#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

void
tek_ak_cn(const char *device_id, char *cn, size_t len)
{
	/* skip the 4 hex digits of the nameAlg */
	const char *d = strlen(device_id) > 4 ? device_id + 4 : device_id;

	snprintf(cn, len, "vtpm-ak-%.32s", d);
}

int
tek_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX      ctx;
	X509_EXTENSION *ex;
	int             ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ex == NULL) {
		return -1;
	}
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok ? 0 : -1;
}

int
tek_der_to_pem(const uint8_t *der, size_t len, char *pem, size_t pemlen)
{
	const unsigned char *p = der;
	X509                *x = d2i_X509(NULL, &p, (long) len);
	BIO                 *bio = BIO_new(BIO_s_mem());
	char                *data;
	long                 n;
	int                  ret = -1;

	if (x != NULL && bio != NULL && PEM_write_bio_X509(bio, x)) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0 && (size_t) n < pemlen) {
			memcpy(pem, data, (size_t) n);
			pem[n] = '\0';
			ret = 0;
		}
	}
	BIO_free(bio);
	X509_free(x);
	return ret;
}
