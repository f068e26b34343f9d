/*
 * ek.c: EK certificates for a vTPM created just now (guardian said "new"
 * or "reset"). As a physical TPM ships: the certificates sit in NV and
 * the EKs themselves are not taken out of the guest's hands. For each of
 * the two TCG templates a guest's tpm2_createek uses (L-1 RSA-2048, L-2
 * ECC NIST P-256): TPM2_CreatePrimary in the endorsement hierarchy, an
 * AttestRequest certify-ek to the key broker, the certificate into the EK
 * certificate NV index (0x01c00002 RSA, 0x01c0000a ECC; platform-created,
 * as swtpm_setup does), and the EK flushed again: it is derived from the
 * endorsement seed, so the guest's `tpm2_createek -c 0x81010001` makes
 * and persists exactly the certified key. vtpm.ek "persist" also
 * persists the RSA EK at 0x81010001 for apps that expect it there.
 * Later launches of the same state never come here.
 */
#include "launcher.h"
#include "common.h"
#include "log.h"
#include "pubsub.h"
#include "tpm_ek.h"
#include "vtpm_chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

/* The broker's certificate for ek, as DER in der. Returns its length,
 * -1 with err. */
static int
certify(const struct launcher_cfg *cfg, const char *uuid,
        const TPM2B_PUBLIC *ek, uint8_t *der, size_t max, char *err,
        size_t errlen)
{
	struct attest_req *req = calloc(1, sizeof(*req));
	struct attest_rep *rep = calloc(1, sizeof(*rep));
	enum msg_type      rt;
	char               e[REASON_LEN];
	BIO               *bio = NULL;
	X509              *x = NULL;
	unsigned char     *p = der;
	int                n = -1;

	if (req == NULL || rep == NULL) {
		strfmt(err, errlen, "out of memory");
		goto out;
	}
	req->op = AOP_CERTIFY_EK;
	memcpy(req->uuid, uuid, sizeof(req->uuid));
	if (tek_pub_to_hex(ek, req->ek_pub, sizeof(req->ek_pub)) < 0) {
		strfmt(err, errlen, "cannot encode the EK public area");
		goto out;
	}
	if (req_client_call(cfg->keybroker, MSG_ATTEST_REQ, req, &rt, rep,
	                    cfg->req_timeout_ms, e, sizeof(e)) < 0) {
		strfmt(err, errlen, "keybroker unavailable: %s", e);
		goto out;
	}
	if (!rep->ok) {
		strfmt(err, errlen, "keybroker: certify-ek: %s", rep->reason);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(rep->ek_cert, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    i2d_X509(x, NULL) > (int) max) {
		strfmt(err, errlen, "keybroker sent no usable certificate");
		goto out;
	}
	n = i2d_X509(x, &p);
out:
	X509_free(x);
	BIO_free(bio);
	free(req);
	free(rep);
	return n;
}

/* One EK: create (persist or flush), certify, write NV. 1 certificate
 * written, 0 none (no broker or the broker failed: logged), -1 TPM
 * failure (err). */
static int
one_ek(const struct launcher_cfg *cfg, const char *uuid, ESYS_CONTEXT *e,
       TPM2_ALG_ID alg, uint32_t persist, uint32_t index, uint64_t *ek_ms,
       uint64_t *cert_ms, char *err, size_t errlen)
{
	TPM2B_PUBLIC *ek = NULL;
	const char   *name = alg == TPM2_ALG_ECC ? "ECC" : "RSA";
	char          m[REASON_LEN], fp[65];
	uint8_t       der[TEK_CERT_MAX], d[SHA256_DIGEST_LENGTH];
	uint64_t      t0 = now_ms();
	int           n, ret = -1;

	if (tek_ek_create(e, alg, persist, &ek, m, sizeof(m)) < 0) {
		strfmt(err, errlen, "%s EK: %s", name, m);
		return -1;
	}
	*ek_ms += now_ms() - t0;
	t0 = now_ms();
	if (cfg->keybroker == NULL) {
		ret = 0;
		goto out;
	}
	n = certify(cfg, uuid, ek, der, sizeof(der), m, sizeof(m));
	if (n < 0) {
		/* the guest can still make the EK; the certificate can
		 * be had later (vtpmctl attest asks the broker) */
		log_warnx("%s: vTPM %s EK without certificate: %s", uuid, name,
		          m);
		ret = 0;
		goto out;
	}
	if (tek_nv_write_cert(e, index, der, (size_t) n, m, sizeof(m)) < 0) {
		strfmt(err, errlen, "%s EK certificate into NV 0x%x: %s", name,
		       index, m);
		goto out;
	}
	SHA256(der, (size_t) n, d);
	hex_encode(d, sizeof(d), fp, sizeof(fp));
	log_info("%s: %s EK certificate in NV 0x%x, sha256 %s", uuid, name,
	         index, fp);
	ret = 1;
out:
	*cert_ms += now_ms() - t0;
	Esys_Free(ek);
	return ret;
}

int
lek_provision(const struct launcher_cfg *cfg, const char *uuid, int mode,
              int *certs, char *err, size_t errlen)
{
	struct tek_vtpm v;
	char            ctrl[SOCK_LEN], e[REASON_LEN];
	int             r, ret = -1;
	uint64_t        t0 = now_ms(), ek_ms[2] = {0}, cert_ms[2] = {0};
	uint32_t        persist = mode == VTPM_EK_PERSIST ? TEK_EK_HANDLE : 0;

	*certs = 0;
	if (cfg->keybroker == NULL && persist == 0) {
		/* nothing to certify, nothing to persist: the EK is the
		 * guest's to make when it wants one */
		log_info("%s: vTPM EKs not made: no key broker to certify them",
		         uuid);
		return 0;
	}
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0) {
		strfmt(err, errlen, "control socket path too long");
		return -1;
	}
	if (tek_vtpm_open(&v, ctrl, cfg->start_timeout_ms, e, sizeof(e)) < 0) {
		strfmt(err, errlen, "EK: vTPM channel: %s", e);
		return -1;
	}
	r = one_ek(cfg, uuid, v.ectx, TPM2_ALG_RSA, persist, TEK_EKCERT_INDEX,
	           &ek_ms[0], &cert_ms[0], err, errlen);
	if (r < 0) {
		goto out;
	}
	*certs += r;
	r = one_ek(cfg, uuid, v.ectx, TPM2_ALG_ECC, 0, TEK_EKCERT_ECC_INDEX,
	           &ek_ms[1], &cert_ms[1], err, errlen);
	if (r < 0) {
		goto out;
	}
	*certs += r;
	ret = 0;
out:
	if (tek_vtpm_close(&v, e, sizeof(e)) < 0 && ret == 0) {
		strfmt(err, errlen, "EK: %s", e);
		ret = -1;
	}
	if (ret == 0) {
		log_info(
		    "%s: vTPM EKs %s, %d certificate(s) in NV in %llu ms "
		    "(RSA EK %llu ms, certificate %llu ms; ECC EK %llu ms, "
		    "certificate %llu ms)",
		    uuid, persist ? "RSA persisted at 0x81010001" : "flushed",
		    *certs, (unsigned long long) (now_ms() - t0),
		    (unsigned long long) ek_ms[0],
		    (unsigned long long) cert_ms[0],
		    (unsigned long long) ek_ms[1],
		    (unsigned long long) cert_ms[1]);
	}
	return ret;
}
