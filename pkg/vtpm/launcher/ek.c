/*
 * ek.c: EK provisioning for a vTPM created just now (guardian said
 * "new"): TPM2_CreatePrimary with the TCG RSA-2048 template in the
 * endorsement hierarchy, persisted at 0x81010001 (where Azure IoT DPS and
 * tpm2_getekcertificate look), then an AttestRequest certify-ek to the
 * key broker and the certificate into the RSA EK-certificate NV index
 * 0x01c00002 (platform-created, as swtpm_setup does). Later launches of
 * the same state never come here.
 */
#include "launcher.h"
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
 * 0 when there is no broker, -1 with err. */
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

int
lek_provision(const struct launcher_cfg *cfg, const char *uuid, bool *cert,
              char *err, size_t errlen)
{
	struct tek_vtpm v;
	TPM2B_PUBLIC   *ek = NULL;
	char            ctrl[SOCK_LEN], e[REASON_LEN], fp[65] = "";
	uint8_t         der[TEK_CERT_MAX];
	int             n, ret = -1;
	uint64_t        t0 = now_ms(), t1, t2;

	*cert = false;
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0) {
		strfmt(err, errlen, "control socket path too long");
		return -1;
	}
	if (tek_vtpm_open(&v, ctrl, cfg->start_timeout_ms, e, sizeof(e)) < 0) {
		strfmt(err, errlen, "EK: vTPM channel: %s", e);
		return -1;
	}
	if (tek_ek_provision(v.ectx, TEK_EK_HANDLE, &ek, e, sizeof(e)) < 0) {
		strfmt(err, errlen, "EK: %s", e);
		goto out;
	}
	t1 = now_ms();
	t2 = t1;
	if (cfg->keybroker != NULL) {
		n = certify(cfg, uuid, ek, der, sizeof(der), e, sizeof(e));
		t2 = now_ms();
		if (n < 0) {
			/* the EK stands; the certificate can be had later
			 * (vtpmctl attest asks the broker) */
			log_warnx("%s: vTPM EK without certificate: %s", uuid,
			          e);
		} else if (tek_nv_write_cert(v.ectx, TEK_EKCERT_INDEX, der,
		                             (size_t) n, e, sizeof(e)) < 0) {
			strfmt(err, errlen, "EK certificate into NV 0x%x: %s",
			       TEK_EKCERT_INDEX, e);
			goto out;
		} else {
			uint8_t d[SHA256_DIGEST_LENGTH];

			SHA256(der, (size_t) n, d);
			hex_encode(d, sizeof(d), fp, sizeof(fp));
			*cert = true;
		}
	}
	ret = 0;
out:
	Esys_Free(ek);
	if (tek_vtpm_close(&v, e, sizeof(e)) < 0 && ret == 0) {
		strfmt(err, errlen, "EK: %s", e);
		ret = -1;
	}
	if (ret == 0) {
		log_info("%s: vTPM EK at 0x%x%s in %llu ms (EK %llu ms, "
		         "certificate %llu ms)",
		         uuid, TEK_EK_HANDLE,
		         *cert ? ", certificate in NV 0x1c00002" : "",
		         (unsigned long long) (now_ms() - t0),
		         (unsigned long long) (t1 - t0),
		         (unsigned long long) (t2 - t1));
		if (*cert) {
			log_info("%s: EK certificate sha256 %s", uuid, fp);
		}
	}
	return ret;
}
