/*
 * attest.c: vtpmctl attest: what a verifier needs from this device and
 * one of its vTPMs, as JSON, and the device side of AK activation.
 *
 *   attest --device             the device: id (AK name), hardware EK,
 *                               AK public, AK certificate if stored
 *   attest --activate FILE      answer a vtpm-verify challenge
 *                               (ActivateCredential in the key broker)
 *   attest --set-ak-cert FILE   store the AK certificate the verifier
 *                               issued (PEM) in the broker's vault
 *   attest UUID [--nonce HEX]   the device plus the VM's vTPM EKs (RSA:
 *                               the one persisted at 0x81010001, else
 *                               derived again with CreatePrimary; ECC
 *                               P-256: derived) and their EK certificates:
 *                               the ones in NV 0x01c00002 / 0x01c0000a
 *                               when this device's AK signed them, else
 *                               fresh ones from the broker; with --nonce
 *                               also a TPM2_Quote of the hardware TPM's
 *                               vault PCRs by the AK over the nonce
 */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"
#include "tpm_ek.h"
#include "vtpm_chan.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

static int
broker_call(const char *rundir, struct attest_req *req, struct attest_rep *rep,
            int timeout_ms)
{
	struct req_client *c = NULL;
	enum msg_type      rt;
	char               err[512];
	int                rc = -1;

	if (req_client_open(&c, rundir, "keybroker") < 0) {
		fprintf(stderr,
		        "vtpmctl: attest: cannot open keybroker in %s\n",
		        rundir);
		return -1;
	}
	if (req_client_call(c, MSG_ATTEST_REQ, req, &rt, rep, timeout_ms, err,
	                    sizeof(err)) < 0) {
		fprintf(stderr, "vtpmctl: attest %s: %s\n",
		        attest_op_name(req->op), err);
	} else if (!rep->ok) {
		fprintf(stderr, "vtpmctl: attest %s: %s\n",
		        attest_op_name(req->op), rep->reason);
	} else {
		rc = 0;
	}
	req_client_close(c);
	return rc;
}

static struct attest_req *
new_req(int op, const char *uuid)
{
	struct attest_req *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->op = op;
		snprintf(r->uuid, sizeof(r->uuid), "%s",
		         uuid ? uuid : KEYBROKER_STATUS_KEY);
	}
	return r;
}

/* {"0": hex, ...} of the PCRs in the list "0,1,..." */
static cJSON *
pcrs_json(const char *list, const struct pcr_values *v)
{
	cJSON      *o = cJSON_CreateObject();
	char        key[4], hex[65];
	const char *p = list;
	char       *end;

	while (*p != '\0') {
		long i = strtol(p, &end, 10);

		if (end == p || i < 0 || i > 15) {
			break;
		}
		snprintf(key, sizeof(key), "%ld", i);
		hex_encode(v->v[i], 32, hex, sizeof(hex));
		cJSON_AddStringToObject(o, key, hex);
		p = *end == ',' ? end + 1 : end;
	}
	return o;
}

static cJSON *
device_json(const struct attest_rep *rep)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "device_id", rep->device_id);
	cJSON_AddStringToObject(d, "ek_pub", rep->ek_pub);
	cJSON_AddStringToObject(d, "ak_pub", rep->ak_pub);
	if (rep->ak_cert[0]) {
		cJSON_AddStringToObject(d, "ak_cert", rep->ak_cert);
	}
	if (rep->hw_ek_cert[0]) {
		cJSON_AddStringToObject(d, "hw_ek_cert", rep->hw_ek_cert);
	}
	if (rep->hw_ek_cert_ecc[0]) {
		cJSON_AddStringToObject(d, "hw_ek_cert_ecc",
		                        rep->hw_ek_cert_ecc);
	}
	/* unsigned: what the verifier records as reference at enrolment */
	cJSON_AddItemToObject(d, "pcrs", pcrs_json(rep->pcrs, &rep->values));
	return d;
}

/* The quote as the verifier needs it; the clock info is decoded here only
 * for people reading the report (the verifier decodes the signed bytes
 * itself). */
static cJSON *
quote_json(const char *nonce, const struct attest_rep *rep)
{
	cJSON      *q = cJSON_CreateObject(), *c;
	uint8_t     buf[ATTEST_QUOTE_LEN / 2];
	TPMS_ATTEST a;
	size_t      off = 0;
	int         n = hex_decode_str(rep->quote, buf, sizeof(buf));

	cJSON_AddStringToObject(q, "nonce", nonce);
	cJSON_AddStringToObject(q, "attest", rep->quote);
	cJSON_AddStringToObject(q, "signature", rep->signature);
	cJSON_AddItemToObject(q, "pcrs", pcrs_json(rep->pcrs, &rep->values));
	if (n > 0 && Tss2_MU_TPMS_ATTEST_Unmarshal(buf, (size_t) n, &off, &a) ==
	                 TSS2_RC_SUCCESS) {
		c = cJSON_AddObjectToObject(q, "clock");
		cJSON_AddNumberToObject(c, "clock", (double) a.clockInfo.clock);
		cJSON_AddNumberToObject(c, "reset_count",
		                        (double) a.clockInfo.resetCount);
		cJSON_AddNumberToObject(c, "restart_count",
		                        (double) a.clockInfo.restartCount);
		cJSON_AddBoolToObject(c, "safe", a.clockInfo.safe);
	}
	return q;
}

static int
print_json(cJSON *o)
{
	char *s = cJSON_Print(o);

	cJSON_Delete(o);
	if (s == NULL) {
		return 1;
	}
	printf("%s\n", s);
	free(s); /* cJSON_Print buffer: ours */
	return 0;
}

static char *
slurp(const char *path, size_t max)
{
	char  *buf = NULL;
	size_t len = 0;

	if (read_file(path, max, &buf, &len) < 0) {
		fprintf(stderr, "vtpmctl: attest: read %s: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	return buf;
}

static int
copy_field(cJSON *o, const char *name, char *dst, size_t len, const char *path)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v) || strlen(v->valuestring) >= len) {
		fprintf(stderr, "vtpmctl: attest: %s: no valid \"%s\"\n", path,
		        name);
		return -1;
	}
	snprintf(dst, len, "%s", v->valuestring);
	return 0;
}

/* The EK certificate in der was signed by this device's AK? */
static bool
signed_by_ak(const uint8_t *der, size_t len, const char *ak_pub_hex)
{
	const unsigned char *p = der;
	TPM2B_PUBLIC         ak;
	X509                *x = d2i_X509(NULL, &p, (long) len);
	EVP_PKEY            *pk = NULL;
	bool                 ok = false;

	if (x != NULL && tek_pub_from_hex(ak_pub_hex, &ak) == 0 &&
	    (pk = tek_pub_to_pkey(&ak)) != NULL) {
		ok = X509_verify(x, pk) == 1;
	}
	EVP_PKEY_free(pk);
	X509_free(x);
	return ok;
}

/* One vTPM EK and its certificate as the report's object: the NV
 * certificate when this device's AK signed it, else a fresh one from the
 * broker. */
static cJSON *
ek_json(const char *rundir, const char *uuid, const TPM2B_PUBLIC *ek,
        const char *ek_source, const uint8_t *der, int n,
        const struct attest_rep *dev, int timeout_ms)
{
	struct attest_req *req = new_req(AOP_CERTIFY_EK, uuid);
	struct attest_rep *crt = calloc(1, sizeof(*crt));
	char               ekhex[ATTEST_PUB_LEN], pem[ATTEST_PEM_LEN] = "";
	const char        *source = "nv";
	cJSON             *o = NULL;

	if (req == NULL || crt == NULL ||
	    tek_pub_to_hex(ek, ekhex, sizeof(ekhex)) < 0) {
		goto out;
	}
	if (n > 0 && signed_by_ak(der, (size_t) n, dev->ak_pub)) {
		(void) tek_der_to_pem(der, (size_t) n, pem, sizeof(pem));
	}
	if (pem[0] == '\0') {
		/* none in NV, or one from another device's AK: ask ours */
		source = n > 0 ? "broker (NV certificate is not from this "
		                 "device's AK)"
		               : "broker (none in NV)";
		snprintf(req->ek_pub, sizeof(req->ek_pub), "%s", ekhex);
		if (broker_call(rundir, req, crt, timeout_ms) < 0) {
			goto out;
		}
		snprintf(pem, sizeof(pem), "%s", crt->ek_cert);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ek_pub", ekhex);
	cJSON_AddStringToObject(o, "ek_source", ek_source);
	cJSON_AddStringToObject(o, "ek_cert", pem);
	cJSON_AddStringToObject(o, "ek_cert_source", source);
out:
	free(req);
	free(crt);
	return o;
}

/* The vTPM's EK of alg: RSA from 0x81010001 when an EK of template L-1
 * sits there, else (and always for ECC) CreatePrimary with the template
 * and flush; plus the NV certificate at index. 0 or -1 (printed). */
static int
vtpm_ek(struct tek_vtpm *v, const char *uuid, TPM2_ALG_ID alg,
        TPM2B_PUBLIC **ek, const char **source, uint8_t *der, int *n)
{
	uint32_t index =
	    alg == TPM2_ALG_ECC ? TEK_EKCERT_ECC_INDEX : TEK_EKCERT_INDEX;
	char err[512];
	int  r = 1;

	*ek = NULL;
	*source = "derived (CreatePrimary, template L-2)";
	if (alg == TPM2_ALG_RSA) {
		*source = "persistent 0x81010001";
		r = tek_read_public(v->ectx, TEK_EK_HANDLE, ek, err,
		                    sizeof(err));
		if (r < 0) {
			fprintf(stderr, "vtpmctl: attest %s: vTPM: %s\n", uuid,
			        err);
			return -1;
		}
		if (r == 0 && tek_ek_alg(*ek) != TPM2_ALG_RSA) {
			Esys_Free(*ek); /* not an EK: leave it, derive ours */
			*ek = NULL;
			r = 1;
		}
		if (r == 1) {
			*source = "derived (CreatePrimary, template L-1)";
		}
	}
	if (r == 1 &&
	    tek_ek_create(v->ectx, alg, 0, ek, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmctl: attest %s: vTPM: %s\n", uuid, err);
		return -1;
	}
	*n = tek_nv_read(v->ectx, index, der, TEK_CERT_MAX, err, sizeof(err));
	if (*n < 0) {
		fprintf(stderr, "vtpmctl: attest %s: vTPM NV 0x%x: %s\n", uuid,
		        index, err);
		return -1;
	}
	return 0;
}

static int
attest_vm(const char *rundir, const char *uuid, const char *nonce,
          int timeout_ms)
{
	struct vctl_status     st;
	const struct vctl_row *r;
	struct tek_vtpm        v;
	struct attest_req     *req = new_req(AOP_INFO, NULL);
	struct attest_rep     *dev = calloc(1, sizeof(*dev));
	struct attest_rep     *q = calloc(1, sizeof(*q));
	TPM2B_PUBLIC          *rsa = NULL, *ecc = NULL;
	uint8_t                rder[TEK_CERT_MAX], eder[TEK_CERT_MAX];
	const char            *rsrc, *esrc;
	char                   ctrl[SOCK_LEN], err[512];
	int                    rn = 0, en = 0, rc = 1;
	cJSON                 *o = NULL, *vm, *d, *re, *ee;

	if (!uuid_valid(uuid)) {
		fprintf(stderr, "vtpmctl: attest: \"%s\" is not a UUID\n",
		        uuid);
		rc = 2;
		goto out;
	}
	if (req == NULL || dev == NULL || q == NULL ||
	    broker_call(rundir, req, dev, timeout_ms) < 0) {
		goto out;
	}
	if (nonce != NULL) {
		/* right after the device info: the fresh part first */
		req->op = AOP_QUOTE;
		snprintf(req->nonce, sizeof(req->nonce), "%s", nonce);
		if (broker_call(rundir, req, q, timeout_ms) < 0) {
			goto out;
		}
	}
	vctl_status_fetch(&st, rundir, timeout_ms);
	r = vctl_status_find(&st, uuid);
	if (r == NULL || !r->has_vtpm || r->vt.state != VTPM_READY) {
		fprintf(stderr, "vtpmctl: attest %s: its vTPM is not READY\n",
		        uuid);
		vctl_status_free(&st);
		goto out;
	}
	snprintf(ctrl, sizeof(ctrl), "%s", r->vt.ctrl_socket);
	vctl_status_free(&st);
	if (tek_vtpm_open(&v, ctrl, timeout_ms < 10000 ? 10000 : timeout_ms,
	                  err, sizeof(err)) < 0) {
		fprintf(stderr,
		        "vtpmctl: attest %s: vTPM: %s (is a VM "
		        "attached?)\n",
		        uuid, err);
		goto out;
	}
	if (vtpm_ek(&v, uuid, TPM2_ALG_RSA, &rsa, &rsrc, rder, &rn) < 0 ||
	    vtpm_ek(&v, uuid, TPM2_ALG_ECC, &ecc, &esrc, eder, &en) < 0) {
		(void) tek_vtpm_close(&v, NULL, 0);
		goto out;
	}
	(void) tek_vtpm_close(&v, NULL, 0);
	re = ek_json(rundir, uuid, rsa, rsrc, rder, rn, dev, timeout_ms);
	ee = ek_json(rundir, uuid, ecc, esrc, eder, en, dev, timeout_ms);
	if (re == NULL || ee == NULL) {
		cJSON_Delete(re);
		cJSON_Delete(ee);
		goto out;
	}
	o = cJSON_CreateObject();
	d = device_json(dev);
	if (nonce != NULL) {
		cJSON_AddItemToObject(d, "quote", quote_json(nonce, q));
	}
	cJSON_AddItemToObject(o, "device", d);
	/* vm: the RSA EK's fields at the top (what the verifier checks
	 * first), the ECC EK in vm.ecc */
	vm = re;
	cJSON_AddItemToObject(o, "vm", vm);
	cJSON_AddStringToObject(vm, "uuid", uuid);
	cJSON_AddItemToObject(vm, "ecc", ee);
	rc = print_json(o);
out:
	Esys_Free(rsa);
	Esys_Free(ecc);
	free(req);
	free(dev);
	free(q);
	return rc;
}

int
vctl_attest(const char *rundir, int argc, char **argv, int timeout_ms)
{
	struct attest_req *req = NULL;
	struct attest_rep *rep = NULL;
	cJSON             *o;
	char              *buf;
	int                rc = 1;

	if (timeout_ms < 15000) {
		timeout_ms = 15000; /* TPM work: RSA operations */
	}
	if (argc == 1 && argv[0][0] != '-') {
		return attest_vm(rundir, argv[0], NULL, timeout_ms);
	}
	if (argc == 3 && argv[0][0] != '-' && strcmp(argv[1], "--nonce") == 0) {
		return attest_vm(rundir, argv[0], argv[2], timeout_ms);
	}
	if (!((argc == 1 && strcmp(argv[0], "--device") == 0) ||
	      (argc == 2 && (strcmp(argv[0], "--activate") == 0 ||
	                     strcmp(argv[0], "--set-ak-cert") == 0)))) {
		fprintf(stderr, "vtpmctl: attest UUID [--nonce HEX] | --device "
		                "| --activate FILE | --set-ak-cert FILE\n");
		return 2;
	}
	if ((req = new_req(AOP_INFO, NULL)) == NULL ||
	    (rep = calloc(1, sizeof(*rep))) == NULL) {
		goto out;
	}
	if (strcmp(argv[0], "--activate") == 0) {
		req->op = AOP_ACTIVATE;
		if ((buf = slurp(argv[1], 64 * 1024)) == NULL) {
			goto out;
		}
		o = cJSON_Parse(buf);
		free(buf);
		if (o == NULL ||
		    copy_field(o, "credential_blob", req->credential_blob,
		               sizeof(req->credential_blob), argv[1]) < 0 ||
		    copy_field(o, "secret", req->secret, sizeof(req->secret),
		               argv[1]) < 0) {
			if (o == NULL) {
				fprintf(stderr,
				        "vtpmctl: attest: %s: not "
				        "JSON\n",
				        argv[1]);
			}
			cJSON_Delete(o);
			goto out;
		}
		cJSON_Delete(o);
	} else if (strcmp(argv[0], "--set-ak-cert") == 0) {
		req->op = AOP_SET_AK_CERT;
		if ((buf = slurp(argv[1], sizeof(req->ak_cert) - 1)) == NULL) {
			goto out;
		}
		snprintf(req->ak_cert, sizeof(req->ak_cert), "%s", buf);
		free(buf);
	}
	if (broker_call(rundir, req, rep, timeout_ms) < 0) {
		goto out;
	}
	if (req->op == AOP_ACTIVATE) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "device_id", rep->device_id);
		cJSON_AddStringToObject(o, "credential", rep->credential);
		rc = print_json(o);
	} else if (req->op == AOP_SET_AK_CERT) {
		printf("AK certificate stored for device %s\n", rep->device_id);
		rc = 0;
	} else {
		rc = print_json(device_json(rep));
	}
out:
	free(req);
	free(rep);
	return rc;
}
