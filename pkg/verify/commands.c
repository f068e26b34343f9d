/*
 * commands.c: the vtpm-verify subcommands (exit codes: 0 ok, 1 refused or
 * failed, 2 usage, 3 clone alert, 4 boot state differs from the
 * reference).
 *
 *   ca                        print the CA certificate (created if absent)
 *   challenge FILE            a MakeCredential challenge for the device in
 *                             FILE (vtpmctl attest --device / attest UUID),
 *                             once its hardware EK certificate chains to a
 *                             TPM maker CA (--tpm-ca) or --tofu is given;
 *                             records the device's PCR values as its
 *                             reference when it has none
 *   activate FILE             check the device's answer ({device_id,
 *                             credential}); on success issue and print
 *                             its AK certificate, mark it active
 *   verify-cert --ek-cert F --ak-cert F [--vm UUID] [--device ID]
 *                             the chain vTPM EK <- AK <- CA only
 *   check FILE                a vtpmctl attest UUID report: the device is
 *                             active, its AK is the registered one, the EK
 *                             certificate chain holds and certifies the
 *                             reported EK for that VM; then the EK -> device
 *                             binding, with a clone alert when the EK was
 *                             seen behind another device
 *                             with a quote (vtpmctl attest UUID --nonce):
 *                             signature by the registered AK, a nonce this
 *                             verifier issued and nobody used, the PCRs
 *                             against the reference
 *   alerts                    the clone alerts recorded, as a JSON array
 *   nonce DEVICE              issue a quote nonce for the device
 *   reference DEVICE FILE     replace the device's reference PCR values
 */
#include "verify.h"
#include "common.h"
#include "keyfmt.h"
#include "tpm_ek.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

static cJSON *
load_json(const char *path)
{
	char  *buf = NULL;
	size_t len = 0;
	cJSON *o;

	if (read_file(path, 256 * 1024, &buf, &len) < 0) {
		fprintf(stderr, "vtpm-verify: read %s: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	o = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!cJSON_IsObject(o)) {
		fprintf(stderr, "vtpm-verify: %s: not a JSON object\n", path);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static const char *
str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
print_json(cJSON *o)
{
	char *s = cJSON_Print(o);

	cJSON_Delete(o);
	if (s == NULL) {
		return -1;
	}
	printf("%s\n", s);
	free(s); /* cJSON_Print's buffer */
	return 0;
}

static void
sha256_hex(const uint8_t *b, size_t n, char out[65])
{
	uint8_t d[32];

	SHA256(b, n, d);
	hex_encode(d, sizeof(d), out, 65);
}

int
vfy_cmd_ca(struct vfy_ctx *c, int argc, char **argv)
{
	EVP_PKEY *k;
	X509     *x;
	char      err[512];

	(void) argv;
	if (argc != 0) {
		fprintf(stderr, "vtpm-verify: ca takes no arguments\n");
		return 2;
	}
	if (vfy_ca_load(c->ca, &k, &x, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: CA %s: %s\n", c->ca, err);
		return 1;
	}
	PEM_write_X509(stdout, x);
	X509_free(x);
	EVP_PKEY_free(k);
	return 0;
}

/* Is the device's hardware EK a TPM maker's? Its certificate (from NV
 * 0x01c00002) must chain to --tpm-ca and certify ek; without a
 * certificate or without --tpm-ca only --tofu lets it through, with a
 * warning. A certificate that fails its chain is refused even then.
 * trust gets "maker" or "tofu". */
static int
hw_ek_trust(const struct vfy_ctx *c, const char *id, const TPM2B_PUBLIC *ek,
            const char *cert, char *trust, size_t tlen, char *err,
            size_t errlen)
{
	if (cert != NULL && c->tpm_ca[0] != '\0') {
		if (vfy_check_maker_cert(c->tpm_ca, cert, ek, err, errlen) <
		    0) {
			return -1;
		}
		snprintf(trust, tlen, "maker");
		return 0;
	}
	if (!c->tofu) {
		snprintf(err, errlen, "%s",
		         cert == NULL ? "the device reports no hardware EK "
		                        "certificate (NV 0x01c00002); --tofu "
		                        "trusts its EK on first use"
		                      : "no --tpm-ca DIR to check its hardware "
		                        "EK certificate against; --tofu trusts "
		                        "its EK on first use");
		return -1;
	}
	fprintf(stderr,
	        "vtpm-verify: WARNING: device %s: hardware EK trusted on first "
	        "use (%s): nothing shows it is a real TPM\n",
	        id,
	        cert == NULL ? "no EK certificate" : "no --tpm-ca to check it");
	snprintf(trust, tlen, "tofu");
	return 0;
}

/* The PCR values of the enrolment report become the reference when the
 * device has none (later changes: vtpm-verify reference). */
static int
first_reference(struct vfy_ctx *c, const char *id, const cJSON *pcrs, char *err,
                size_t errlen)
{
	uint8_t  v[16][32], old[16][32];
	uint32_t mask, oldmask;
	char     list[64];
	int      n;

	if (pcrs == NULL) {
		return 0;
	}
	if (vfy_pcrs_parse(pcrs, &mask, v, err, errlen) < 0 ||
	    (n = c->reg.ops->ref_get(c->reg.h, id, &oldmask, old, err,
	                             errlen)) < 0) {
		return -1;
	}
	if (n == 1) {
		return 0;
	}
	if (c->reg.ops->ref_put(c->reg.h, id, mask, (const uint8_t(*)[32]) v,
	                        err, errlen) < 0) {
		return -1;
	}
	pcrset_format(mask, list, sizeof(list));
	fprintf(stderr,
	        "vtpm-verify: device %s: reference PCR values recorded (PCRs "
	        "%s)\n",
	        id, list);
	return 0;
}

int
vfy_cmd_challenge(struct vfy_ctx *c, int argc, char **argv)
{
	struct vfy_device     *d = calloc(1, sizeof(*d));
	TPM2B_PUBLIC           ek, ak;
	TPM2B_NAME             name;
	TPM2B_ID_OBJECT        blob;
	TPM2B_ENCRYPTED_SECRET sec;
	uint8_t                cred[VFY_CRED_LEN], buf[sizeof(sec)];
	char                   err[512], id[ATTEST_ID_LEN], hex[1100];
	char                   trust[16];
	const char            *ekh, *akh, *did, *hw;
	cJSON                 *o = NULL, *dev, *out;
	size_t                 off;
	int                    n, rc = 1;

	if (argc != 1) {
		fprintf(stderr, "vtpm-verify: challenge DEVICE.json\n");
		free(d);
		return 2;
	}
	if (d == NULL || (o = load_json(argv[0])) == NULL) {
		goto out;
	}
	dev = cJSON_GetObjectItemCaseSensitive(o, "device");
	dev = cJSON_IsObject(dev) ? dev : o;
	ekh = str(dev, "ek_pub");
	akh = str(dev, "ak_pub");
	did = str(dev, "device_id");
	hw = str(dev, "hw_ek_cert");
	if (ekh == NULL || akh == NULL || tek_pub_from_hex(ekh, &ek) < 0 ||
	    tek_pub_from_hex(akh, &ak) < 0) {
		fprintf(stderr,
		        "vtpm-verify: %s: needs ek_pub and ak_pub (hex "
		        "TPM2B_PUBLIC)\n",
		        argv[0]);
		goto out;
	}
	if (!tek_is_ek_template(&ek)) {
		fprintf(stderr,
		        "vtpm-verify: %s: ek_pub is not an EK of the "
		        "standard RSA-2048 template\n",
		        argv[0]);
		goto out;
	}
	if (!vfy_is_ak(&ak) || tek_pub_name(&ak, &name) < 0) {
		fprintf(stderr,
		        "vtpm-verify: %s: ak_pub is not a restricted "
		        "fixedTPM signing key\n",
		        argv[0]);
		goto out;
	}
	hex_encode(name.name, name.size, id, sizeof(id));
	if (did != NULL && strcmp(did, id) != 0) {
		fprintf(stderr,
		        "vtpm-verify: %s: device_id %s is not the AK's "
		        "name %s\n",
		        argv[0], did, id);
		goto out;
	}
	if (hw_ek_trust(c, id, &ek, str(dev, "hw_ek_cert"), trust,
	                sizeof(trust), err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: device %s: REFUSED: %s\n", id,
		        err);
		goto out;
	}
	if (RAND_bytes(cred, sizeof(cred)) != 1 ||
	    vfy_make_credential(&ek, &name, cred, sizeof(cred), &blob, &sec,
	                        err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: device %s: MakeCredential: %s\n",
		        id, err[0] ? err : "no randomness");
		goto out;
	}
	if (vfy_ctx_registry(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		goto out;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	snprintf(d->ek_pub, sizeof(d->ek_pub), "%s", ekh);
	snprintf(d->ak_pub, sizeof(d->ak_pub), "%s", akh);
	snprintf(d->state, sizeof(d->state), "pending");
	sha256_hex(cred, sizeof(cred), d->secret_hash);
	n = c->reg.ops->challenge(c->reg.h, d, err, sizeof(err));
	if (n != 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", id,
		        n < 0 ? err : "revoked: no new challenge");
		goto out;
	}
	if (c->reg.ops->hw_ek_put(c->reg.h, id, hw ? hw : "", trust, err,
	                          sizeof(err)) < 0 ||
	    first_reference(c, id,
	                    cJSON_GetObjectItemCaseSensitive(dev, "pcrs"), err,
	                    sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", id, err);
		goto out;
	}
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "device_id", id);
	cJSON_AddStringToObject(out, "hw_ek_trust", trust);
	off = 0;
	(void) Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, buf, sizeof(buf), &off);
	hex_encode(buf, off, hex, sizeof(hex));
	cJSON_AddStringToObject(out, "credential_blob", hex);
	off = 0;
	(void) Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&sec, buf, sizeof(buf),
	                                              &off);
	hex_encode(buf, off, hex, sizeof(hex));
	cJSON_AddStringToObject(out, "secret", hex);
	rc = print_json(out) < 0 ? 1 : 0;
out:
	OPENSSL_cleanse(cred, sizeof(cred));
	cJSON_Delete(o);
	free(d);
	return rc;
}

int
vfy_cmd_activate(struct vfy_ctx *c, int argc, char **argv)
{
	struct vfy_device *d = calloc(1, sizeof(*d));
	TPM2B_PUBLIC       ak;
	EVP_PKEY          *cak = NULL;
	X509              *cacert = NULL;
	uint8_t            cred[64];
	char               err[512], h[65];
	const char        *id, *cr;
	cJSON             *o = NULL;
	int                n, rc = 1;

	if (argc != 1) {
		fprintf(stderr, "vtpm-verify: activate RESPONSE.json\n");
		free(d);
		return 2;
	}
	if (d == NULL || (o = load_json(argv[0])) == NULL) {
		goto out;
	}
	id = str(o, "device_id");
	cr = str(o, "credential");
	if (id == NULL || cr == NULL) {
		fprintf(stderr,
		        "vtpm-verify: %s: needs device_id and "
		        "credential\n",
		        argv[0]);
		goto out;
	}
	if (vfy_ctx_registry(c, err, sizeof(err)) < 0 ||
	    (n = c->reg.ops->device_get(c->reg.h, id, d, err, sizeof(err))) <
	        0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		goto out;
	}
	if (n == 0 || strcmp(d->state, "pending") != 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", id,
		        n == 0 ? "unknown (no challenge was issued)"
		        : strcmp(d->state, "revoked") == 0
		            ? "revoked"
		            : "no challenge pending");
		rc = n == 0 ? VFY_EXIT_UNKNOWN : 1;
		goto out;
	}
	n = hex_decode_str(cr, cred, sizeof(cred));
	if (n > 0) {
		sha256_hex(cred, (size_t) n, h);
	}
	if (n <= 0 || CRYPTO_memcmp(h, d->secret_hash, 64) != 0) {
		fprintf(stderr,
		        "vtpm-verify: device %s: activation FAILED: the "
		        "answer is not the challenge's secret (AK not in the "
		        "TPM of that EK)\n",
		        id);
		goto out;
	}
	if (tek_pub_from_hex(d->ak_pub, &ak) < 0 ||
	    vfy_ca_load(c->ca, &cak, &cacert, err, sizeof(err)) < 0 ||
	    vfy_issue_ak_cert(cak, cacert, &ak, d->id, d->ak_cert,
	                      sizeof(d->ak_cert), err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", id, err);
		goto out;
	}
	/* consumes the secret only if it is still the pending one: of
	 * several activations racing with the same answer, one wins */
	n = c->reg.ops->activate(c->reg.h, d->id, h, d->ak_cert, err,
	                         sizeof(err));
	if (n != 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", id,
		        n < 0 ? err
		              : "activation refused: the challenge was "
		                "answered already (or superseded or revoked "
		                "meanwhile)");
		goto out;
	}
	fputs(d->ak_cert, stdout);
	fprintf(stderr,
	        "vtpm-verify: device %s: AK activated, certificate "
	        "issued\n",
	        id);
	rc = 0;
out:
	EVP_PKEY_free(cak);
	X509_free(cacert);
	cJSON_Delete(o);
	free(d);
	return rc;
}

static char *
slurp(const char *path)
{
	char  *buf = NULL;
	size_t len = 0;

	if (read_file(path, ATTEST_PEM_LEN, &buf, &len) < 0) {
		fprintf(stderr, "vtpm-verify: read %s: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	return buf;
}

int
vfy_cmd_verify_cert(struct vfy_ctx *c, int argc, char **argv)
{
	const char *ekf = NULL, *akf = NULL, *vm = NULL, *dev = NULL;
	char       *ek = NULL, *ak = NULL, err[512];
	EVP_PKEY   *k = NULL;
	X509       *ca = NULL;
	int         rc = 1;

	for (int i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--ek-cert") == 0) {
			ekf = argv[i + 1];
		} else if (strcmp(argv[i], "--ak-cert") == 0) {
			akf = argv[i + 1];
		} else if (strcmp(argv[i], "--vm") == 0) {
			vm = argv[i + 1];
		} else if (strcmp(argv[i], "--device") == 0) {
			dev = argv[i + 1];
		} else {
			ekf = NULL;
			break;
		}
	}
	if (ekf == NULL || akf == NULL || argc % 2 != 0) {
		fprintf(stderr,
		        "vtpm-verify: verify-cert --ek-cert F --ak-cert "
		        "F [--vm UUID] [--device ID]\n");
		return 2;
	}
	if ((ek = slurp(ekf)) == NULL || (ak = slurp(akf)) == NULL) {
		goto out;
	}
	if (vfy_ca_load(c->ca, &k, &ca, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: CA %s: %s\n", c->ca, err);
		goto out;
	}
	if (vfy_check_ek_cert(ca, ak, ek, NULL, vm, dev, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "vtpm-verify: %s: %s\n", ekf, err);
		goto out;
	}
	printf("%s: ok (vTPM EK <- AK <- CA)\n", ekf);
	rc = 0;
out:
	free(ek);
	free(ak);
	EVP_PKEY_free(k);
	X509_free(ca);
	return rc;
}

/* The report's quote (device.quote), when there is one: 0 ok or absent,
 * 1 refused, 4 boot state differs from the reference, -1 registry error;
 * err says why. */
static int
check_quote(struct vfy_ctx *c, const struct vfy_device *d, const cJSON *dev,
            cJSON *out, char *err, size_t errlen)
{
	const cJSON     *q = cJSON_GetObjectItemCaseSensitive(dev, "quote");
	const char      *nh = str(q, "nonce"), *ah = str(q, "attest");
	const char      *sh = str(q, "signature");
	TPM2B_PUBLIC     ak;
	struct vfy_quote vq;
	uint8_t          nonce[64], att[ATTEST_QUOTE_LEN / 2];
	uint8_t          sig[ATTEST_SIG_LEN / 2], v[16][32], ref[16][32];
	uint32_t         mask, refmask, bad;
	char             list[64];
	int              nn, na, ns, r;
	cJSON           *o;

	if (q == NULL) {
		cJSON_AddBoolToObject(out, "quote", false);
		return 0;
	}
	if (nh == NULL || ah == NULL || sh == NULL ||
	    (nn = hex_decode_str(nh, nonce, sizeof(nonce))) <= 0 ||
	    (na = hex_decode_str(ah, att, sizeof(att))) <= 0 ||
	    (ns = hex_decode_str(sh, sig, sizeof(sig))) <= 0) {
		snprintf(
		    err, errlen,
		    "device.quote needs nonce, attest and signature (hex)");
		return 1;
	}
	if (vfy_pcrs_parse(cJSON_GetObjectItemCaseSensitive(q, "pcrs"), &mask,
	                   v, err, errlen) < 0) {
		return 1;
	}
	if (tek_pub_from_hex(d->ak_pub, &ak) < 0) {
		snprintf(err, errlen, "device %s: registered AK unreadable",
		         d->id);
		return -1;
	}
	if (vfy_check_quote(&ak, att, (size_t) na, sig, (size_t) ns, nonce,
	                    (size_t) nn, mask, (const uint8_t(*)[32]) v, &vq,
	                    err, errlen) < 0) {
		return 1;
	}
	/* signed and well-formed: now the nonce may be spent */
	r = c->reg.ops->nonce_take(c->reg.h, d->id, nh, err, errlen);
	if (r < 0) {
		return -1;
	}
	if (r == 0 || r == 2) {
		snprintf(err, errlen,
		         r == 0
		             ? "quote nonce %.32s... was not issued to device "
		               "%s by this verifier (vtpm-verify nonce)"
		             : "quote nonce %.32s... was used before (a "
		               "replayed quote) by device %s",
		         nh, d->id);
		return 1;
	}
	o = cJSON_AddObjectToObject(out, "quote");
	cJSON_AddNumberToObject(o, "clock", (double) vq.clock);
	cJSON_AddNumberToObject(o, "reset_count", (double) vq.reset_count);
	cJSON_AddNumberToObject(o, "restart_count", (double) vq.restart_count);
	cJSON_AddBoolToObject(o, "safe", vq.safe);
	r = c->reg.ops->ref_get(c->reg.h, d->id, &refmask, ref, err, errlen);
	if (r < 0) {
		return -1;
	}
	if (r == 0) {
		snprintf(err, errlen,
		         "device %s has no reference PCR values (vtpm-verify "
		         "reference DEVICE FILE)",
		         d->id);
		return 1;
	}
	bad = vfy_pcrs_differ(mask, (const uint8_t(*)[32]) v, refmask,
	                      (const uint8_t(*)[32]) ref);
	pcrset_format(bad, list, sizeof(list));
	cJSON_AddStringToObject(o, "pcrs_differ", list);
	if (bad != 0) {
		snprintf(err, errlen,
		         "device %s: boot state differs from the reference in "
		         "PCRs %s",
		         d->id, list);
		return 4;
	}
	return 0;
}

/* vm.ecc, when reported: the ECC P-256 EK's certificate chains to the
 * registered AK the same way. 0 or -1 with err. */
static int
check_ecc(X509 *ca, const struct vfy_device *d, const cJSON *vm,
          const char *uuid, char *err, size_t errlen)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(vm, "ecc");
	const char  *ekh = str(e, "ek_pub"), *ekc = str(e, "ek_cert");
	TPM2B_PUBLIC ek;

	if (e == NULL) {
		return 0;
	}
	if (ekh == NULL || ekc == NULL || tek_pub_from_hex(ekh, &ek) < 0 ||
	    tek_ek_alg(&ek) != TPM2_ALG_ECC) {
		snprintf(err, errlen,
		         "VM %s: vm.ecc.ek_pub is not an EK of template L-2",
		         uuid);
		return -1;
	}
	if (vfy_check_ek_cert(ca, d->ak_cert, ekc, &ek, uuid, d->id, err,
	                      errlen) < 0) {
		char m[512];

		strfmt(m, sizeof(m), "ECC EK: %s", err);
		strfmt(err, errlen, "%s", m);
		return -1;
	}
	return 0;
}

/* The checks of one report (a parsed vtpmctl attest UUID document) into
 * the verdict out; returns the exit code (0 ok, 1 refused or failed, 3
 * clone). src names the report in messages. */
static int
check_one(struct vfy_ctx *c, const cJSON *o, const char *src, cJSON *out)
{
	struct vfy_device *d = calloc(1, sizeof(*d));
	struct vfy_verdict v;
	TPM2B_PUBLIC       ek;
	TPM2B_NAME         ekname;
	char               err[512], fp[ATTEST_ID_LEN];
	char               hwcert[ATTEST_PEM_LEN], trust[16];
	const char        *id, *akh, *uuid, *ekh, *ekc;
	const cJSON       *dev, *vm;
	int                n, rc = 1;

	dev = cJSON_GetObjectItemCaseSensitive(o, "device");
	vm = cJSON_GetObjectItemCaseSensitive(o, "vm");
	id = str(dev, "device_id");
	akh = str(dev, "ak_pub");
	uuid = str(vm, "uuid");
	ekh = str(vm, "ek_pub");
	ekc = str(vm, "ek_cert");
	if (d == NULL || id == NULL || akh == NULL || uuid == NULL ||
	    ekh == NULL || ekc == NULL || !uuid_valid(uuid)) {
		snprintf(err, sizeof(err), "not a vtpmctl attest UUID report");
		goto refuse;
	}
	cJSON_AddStringToObject(out, "device_id", id);
	cJSON_AddStringToObject(out, "vm", uuid);
	if (vfy_ctx_registry(c, err, sizeof(err)) < 0 ||
	    (n = c->reg.ops->device_get(c->reg.h, id, d, err, sizeof(err))) <
	        0) {
		goto fail;
	}
	if (n == 1 && strcmp(d->state, "revoked") == 0) {
		snprintf(err, sizeof(err), "device %s is revoked (by %s)", id,
		         d->revoked_by);
		goto refuse;
	}
	if (n == 0 || strcmp(d->state, "active") != 0) {
		snprintf(err, sizeof(err),
		         "device %s is not enrolled (no "
		         "activated AK)",
		         id);
		goto refuse;
	}
	/* how its hardware EK was trusted at enrolment ("maker", "tofu";
	 * "unknown" for a device enrolled before that was recorded) */
	n = c->reg.ops->hw_ek_get(c->reg.h, id, hwcert, sizeof(hwcert), trust,
	                          sizeof(trust), err, sizeof(err));
	if (n < 0) {
		goto fail;
	}
	cJSON_AddStringToObject(out, "hw_ek_trust", n == 1 ? trust : "unknown");
	if (strcmp(d->ak_pub, akh) != 0) {
		snprintf(err, sizeof(err),
		         "device %s reports another AK than the one activated",
		         id);
		goto refuse;
	}
	if (tek_pub_from_hex(ekh, &ek) < 0 || !tek_is_ek_template(&ek) ||
	    tek_pub_name(&ek, &ekname) < 0) {
		snprintf(err, sizeof(err),
		         "VM %s: ek_pub is not an EK of the "
		         "standard template",
		         uuid);
		goto refuse;
	}
	/* the boot state first: a device that fails it says nothing
	 * trustworthy about its vTPMs either */
	n = check_quote(c, d, dev, out, err, sizeof(err));
	if (n < 0) {
		goto fail;
	}
	if (n > 0) {
		rc = n;
		goto refused;
	}
	if (vfy_ctx_ca(c, err, sizeof(err)) < 0) {
		goto fail;
	}
	/* the chain must end in THIS device's registered AK */
	if (vfy_check_ek_cert(c->cacert, d->ak_cert, ekc, &ek, uuid, id, err,
	                      sizeof(err)) < 0 ||
	    check_ecc(c->cacert, d, vm, uuid, err, sizeof(err)) < 0) {
		goto refuse;
	}
	hex_encode(ekname.name, ekname.size, fp, sizeof(fp));
	cJSON_AddStringToObject(out, "ek", fp);
	if (c->reg.ops->report(c->reg.h, fp, id, uuid, &v, err, sizeof(err)) <
	    0) {
		goto fail;
	}
	cJSON_AddBoolToObject(out, "chain_ok", true);
	cJSON_AddBoolToObject(out, "clone", v.clone);
	if (v.clone) {
		cJSON_AddStringToObject(out, "also_behind", v.other);
		cJSON_AddNumberToObject(out, "alert", (double) v.alert_id);
		cJSON_AddBoolToObject(out, "alert_new", v.alert_new);
		fprintf(
		    stderr,
		    "vtpm-verify: CLONE ALERT%s %lld: vTPM EK %s of VM %s is "
		    "behind device %s and device %s\n",
		    v.alert_new ? "" : " (recorded before)",
		    (long long) v.alert_id, fp, uuid, v.other, id);
		rc = 3;
	} else {
		rc = 0;
	}
	goto out;
fail:
	fprintf(stderr, "vtpm-verify: %s: %s\n", src, err);
	cJSON_AddStringToObject(out, "error", err);
	rc = 1;
	goto out;
refuse:
	rc = 1;
	cJSON_AddBoolToObject(out, "chain_ok", false);
refused: /* rc: 1, or 4 when the quoted boot state differs */
	fprintf(stderr, "vtpm-verify: %s: REFUSED: %s\n", src, err);
	cJSON_AddBoolToObject(out, "ok", false);
	cJSON_AddStringToObject(out, "reason", err);
out:
	free(d);
	return rc;
}

/* how bad a check's exit code is: clone (3) over differing boot state (4)
 * over refused or failed (1) over ok (0) */
static int
exit_rank(int rc)
{
	return rc == 3 ? 3 : rc == 4 ? 2 : rc == 0 ? 0 : 1;
}

/* check --stream: one report per line on stdin, one verdict per line on
 * stdout (flushed), with "line" and the report's "exit". The exit status
 * is the worst of them: 3 when any was a clone, else 4 when a quoted boot
 * state differed, else 1 when any was refused or failed, else 0. */
static int
check_stream(struct vfy_ctx *c)
{
	char  *line = NULL, src[64];
	size_t cap = 0;
	long   no = 0;
	int    worst = 0;

	while (getline(&line, &cap, stdin) >= 0) {
		cJSON *o, *out = cJSON_CreateObject();
		char  *s;
		int    rc;

		no++;
		if (line[strspn(line, " \t\r\n")] == '\0') {
			cJSON_Delete(out);
			continue;
		}
		snprintf(src, sizeof(src), "stdin line %ld", no);
		cJSON_AddNumberToObject(out, "line", (double) no);
		o = cJSON_Parse(line);
		if (!cJSON_IsObject(o)) {
			fprintf(stderr, "vtpm-verify: %s: not a JSON object\n",
			        src);
			cJSON_AddBoolToObject(out, "chain_ok", false);
			cJSON_AddStringToObject(out, "reason",
			                        "not a JSON object");
			rc = 1;
		} else {
			rc = check_one(c, o, src, out);
		}
		cJSON_Delete(o);
		cJSON_AddNumberToObject(out, "exit", rc);
		s = cJSON_PrintUnformatted(out);
		cJSON_Delete(out);
		if (s == NULL || printf("%s\n", s) < 0 || fflush(stdout) != 0) {
			fprintf(stderr, "vtpm-verify: stdout: cannot write\n");
			free(s);
			free(line);
			return 1;
		}
		free(s);
		if (exit_rank(rc) > exit_rank(worst)) {
			worst = rc;
		}
	}
	free(line);
	return worst;
}

int
vfy_cmd_check(struct vfy_ctx *c, int argc, char **argv)
{
	cJSON *o, *out;
	int    rc;

	if (argc == 1 && strcmp(argv[0], "--stream") == 0) {
		return check_stream(c);
	}
	if (argc != 1) {
		fprintf(stderr,
		        "vtpm-verify: check REPORT.json | check --stream\n");
		return 2;
	}
	if ((o = load_json(argv[0])) == NULL) {
		return 1;
	}
	out = cJSON_CreateObject();
	rc = check_one(c, o, argv[0], out);
	cJSON_Delete(o);
	(void) print_json(out);
	return rc;
}

int
vfy_cmd_nonce(struct vfy_ctx *c, int argc, char **argv)
{
	struct vfy_device *d = calloc(1, sizeof(*d));
	uint8_t            b[32];
	char               hex[65], err[512];
	int                n, rc = 1;

	if (argc != 1) {
		fprintf(stderr, "vtpm-verify: nonce DEVICE\n");
		free(d);
		return 2;
	}
	if (d == NULL || vfy_ctx_registry(c, err, sizeof(err)) < 0 ||
	    (n = c->reg.ops->device_get(c->reg.h, argv[0], d, err,
	                                sizeof(err))) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", d ? err : "out of memory");
		goto out;
	}
	if (n == 0 || strcmp(d->state, "active") != 0) {
		fprintf(stderr, "vtpm-verify: device %s is not enrolled\n",
		        argv[0]);
		goto out;
	}
	if (RAND_bytes(b, sizeof(b)) != 1) {
		fprintf(stderr, "vtpm-verify: no randomness\n");
		goto out;
	}
	hex_encode(b, sizeof(b), hex, sizeof(hex));
	if (c->reg.ops->nonce_add(c->reg.h, argv[0], hex, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", argv[0], err);
		goto out;
	}
	printf("%s\n", hex);
	rc = 0;
out:
	free(d);
	return rc;
}

int
vfy_cmd_reference(struct vfy_ctx *c, int argc, char **argv)
{
	struct vfy_device *d = calloc(1, sizeof(*d));
	const cJSON       *p, *dev;
	uint8_t            v[16][32];
	uint32_t           mask;
	char               err[512], list[64];
	cJSON             *o = NULL;
	int                n, rc = 1;

	if (argc != 2) {
		fprintf(stderr, "vtpm-verify: reference DEVICE FILE\n");
		free(d);
		return 2;
	}
	if (d == NULL || (o = load_json(argv[1])) == NULL) {
		goto out;
	}
	/* {"0": hex, ...}, or a vtpmctl attest --device / report that
	 * carries them as (device.)pcrs */
	dev = cJSON_GetObjectItemCaseSensitive(o, "device");
	p = cJSON_GetObjectItemCaseSensitive(dev ? dev : o, "pcrs");
	if (vfy_pcrs_parse(p ? p : o, &mask, v, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: %s: %s\n", argv[1], err);
		goto out;
	}
	if (vfy_ctx_registry(c, err, sizeof(err)) < 0 ||
	    (n = c->reg.ops->device_get(c->reg.h, argv[0], d, err,
	                                sizeof(err))) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		goto out;
	}
	if (n == 0) {
		fprintf(stderr, "vtpm-verify: device %s is not registered\n",
		        argv[0]);
		goto out;
	}
	if (c->reg.ops->ref_put(c->reg.h, argv[0], mask,
	                        (const uint8_t(*)[32]) v, err,
	                        sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: device %s: %s\n", argv[0], err);
		goto out;
	}
	pcrset_format(mask, list, sizeof(list));
	printf("device %s: reference PCRs %s recorded\n", argv[0], list);
	rc = 0;
out:
	cJSON_Delete(o);
	free(d);
	return rc;
}
