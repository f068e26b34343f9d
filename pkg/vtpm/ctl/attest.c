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
 *   attest UUID                 the device plus the VM's vTPM EK (read
 *                               from the vTPM at 0x81010001) and its EK
 *                               certificate: the one in NV 0x01c00002
 *                               when this device's AK signed it, else a
 *                               fresh one from the broker
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
	return d;
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

static int
attest_vm(const char *rundir, const char *uuid, int timeout_ms)
{
	struct vctl_status     st;
	const struct vctl_row *r;
	struct tek_vtpm        v;
	struct attest_req     *req = new_req(AOP_INFO, NULL);
	struct attest_rep     *dev = calloc(1, sizeof(*dev));
	struct attest_rep     *crt = calloc(1, sizeof(*crt));
	TPM2B_PUBLIC          *ek = NULL;
	char                   ctrl[SOCK_LEN], err[512], ekhex[ATTEST_PUB_LEN];
	char                   pem[ATTEST_PEM_LEN] = "";
	uint8_t                der[TEK_CERT_MAX];
	const char            *source = "nv";
	int                    n, rc = 1;
	cJSON                 *o, *vm;

	if (!uuid_valid(uuid)) {
		fprintf(stderr, "vtpmctl: attest: \"%s\" is not a UUID\n",
		        uuid);
		rc = 2;
		goto out;
	}
	if (req == NULL || dev == NULL || crt == NULL ||
	    broker_call(rundir, req, dev, timeout_ms) < 0) {
		goto out;
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
	n = tek_read_public(v.ectx, TEK_EK_HANDLE, &ek, err, sizeof(err));
	if (n != 0) {
		fprintf(
		    stderr, "vtpmctl: attest %s: vTPM has no EK at 0x%x%s%s\n",
		    uuid, TEK_EK_HANDLE, n < 0 ? ": " : "", n < 0 ? err : "");
		(void) tek_vtpm_close(&v, NULL, 0);
		goto out;
	}
	n = tek_nv_read(v.ectx, TEK_EKCERT_INDEX, der, sizeof(der), err,
	                sizeof(err));
	(void) tek_vtpm_close(&v, NULL, 0);
	if (tek_pub_to_hex(ek, ekhex, sizeof(ekhex)) < 0) {
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
		memset(req, 0, sizeof(*req));
		req->op = AOP_CERTIFY_EK;
		snprintf(req->uuid, sizeof(req->uuid), "%s", uuid);
		snprintf(req->ek_pub, sizeof(req->ek_pub), "%s", ekhex);
		if (broker_call(rundir, req, crt, timeout_ms) < 0) {
			goto out;
		}
		snprintf(pem, sizeof(pem), "%s", crt->ek_cert);
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "device", device_json(dev));
	vm = cJSON_AddObjectToObject(o, "vm");
	cJSON_AddStringToObject(vm, "uuid", uuid);
	cJSON_AddStringToObject(vm, "ek_pub", ekhex);
	cJSON_AddStringToObject(vm, "ek_cert", pem);
	cJSON_AddStringToObject(vm, "ek_cert_source", source);
	rc = print_json(o);
out:
	Esys_Free(ek);
	free(req);
	free(dev);
	free(crt);
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
		return attest_vm(rundir, argv[0], timeout_ms);
	}
	if (!((argc == 1 && strcmp(argv[0], "--device") == 0) ||
	      (argc == 2 && (strcmp(argv[0], "--activate") == 0 ||
	                     strcmp(argv[0], "--set-ak-cert") == 0)))) {
		fprintf(stderr, "vtpmctl: attest UUID | --device | --activate "
		                "FILE | --set-ak-cert FILE\n");
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
