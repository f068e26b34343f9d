/*
 * registry_pg_attest.c: the attestation tables on PostgreSQL (schema 3):
 * hardware EK certificates, one-use quote nonces, reference PCR values.
 */
#include "registry_pg.h"

#include "common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int
vpg_hw_ek_put(void *h, const char *device, const char *ek_cert,
              const char *trust, char *err, size_t errlen)
{
	struct pg *p = h;
	char       now[24];

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	return vpg_cmd(
	           p,
	           "INSERT INTO hw_eks(device, ek_cert, trust, at) VALUES($1, "
	           "$2, $3, $4) ON CONFLICT(device) DO UPDATE SET ek_cert = "
	           "excluded.ek_cert, trust = excluded.trust, at = excluded.at",
	           "store hardware EK", err, errlen, 4, device, ek_cert, trust,
	           now) < 0
	           ? -1
	           : 0;
}

int
vpg_hw_ek_get(void *h, const char *device, char *ek_cert, size_t certlen,
              char *trust, size_t trustlen, char *err, size_t errlen)
{
	struct pg *p = h;
	PGresult  *r;
	int        n;

	ek_cert[0] = trust[0] = '\0';
	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(p, "SELECT ek_cert, trust FROM hw_eks WHERE device = $1",
	          "select hardware EK", err, errlen, 1, device);
	if (r == NULL) {
		return -1;
	}
	n = PQntuples(r);
	if (n > 0) {
		vpg_gets(r, 0, 0, ek_cert, certlen);
		vpg_gets(r, 0, 1, trust, trustlen);
	}
	PQclear(r);
	return n > 0 ? 1 : 0;
}

int
vpg_nonce_add(void *h, const char *device, const char *nonce, char *err,
              size_t errlen)
{
	struct pg *p = h;
	char       now[24];

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	return vpg_cmd(
	           p,
	           "INSERT INTO nonces(nonce, device, issued) VALUES($1, $2, "
	           "$3)",
	           "insert nonce", err, errlen, 3, nonce, device, now) < 0
	           ? -1
	           : 0;
}

int
vpg_nonce_take(void *h, const char *device, const char *nonce, char *err,
               size_t errlen)
{
	struct pg *p = h;
	char       now[24];
	PGresult  *r;
	int        n;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	/* one conditional UPDATE: of racing checks one takes it (row lock;
	 * the others' WHERE no longer matches) */
	n = vpg_cmd(
	    p,
	    "UPDATE nonces SET used = $1 WHERE nonce = $2 AND device = $3 "
	    "AND used IS NULL",
	    "use nonce", err, errlen, 3, now, nonce, device);
	if (n != 0) {
		return n < 0 ? -1 : 1;
	}
	r = vpg_q(p, "SELECT 1 FROM nonces WHERE nonce = $1 AND device = $2",
	          "select nonce", err, errlen, 2, nonce, device);
	if (r == NULL) {
		return -1;
	}
	n = PQntuples(r);
	PQclear(r);
	return n > 0 ? 2 : 0;
}

struct ref_arg {
	const char *device;
	uint32_t    mask;
	const uint8_t (*values)[32];
};

static int
ref_put_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	struct ref_arg *a = arg;
	char            hex[65], pcr[8], now[24];

	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	if (vpg_cmd(p, "DELETE FROM pcr_refs WHERE device = $1",
	            "delete reference PCRs", err, errlen, 1, a->device) < 0) {
		return -1;
	}
	for (int i = 0; i < 16; i++) {
		if (!(a->mask & (1u << i))) {
			continue;
		}
		hex_encode(a->values[i], 32, hex, sizeof(hex));
		snprintf(pcr, sizeof(pcr), "%d", i);
		if (vpg_cmd(p,
		            "INSERT INTO pcr_refs(device, pcr, value, at) "
		            "VALUES($1, "
		            "$2, $3, $4)",
		            "store reference PCRs", err, errlen, 4, a->device,
		            pcr, hex, now) < 0) {
			return -1;
		}
	}
	return 0;
}

int
vpg_ref_put(void *h, const char *device, uint32_t mask,
            const uint8_t values[16][32], char *err, size_t errlen)
{
	struct ref_arg a = {device, mask, values};

	return vpg_tx(h, vpg_serializable, ref_put_body, &a, err, errlen);
}

int
vpg_ref_get(void *h, const char *device, uint32_t *mask, uint8_t values[16][32],
            char *err, size_t errlen)
{
	struct pg *p = h;
	PGresult  *r;

	*mask = 0;
	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(
	    p, "SELECT pcr, value FROM pcr_refs WHERE device = $1 ORDER BY pcr",
	    "select reference PCRs", err, errlen, 1, device);
	if (r == NULL) {
		return -1;
	}
	for (int k = 0; k < PQntuples(r); k++) {
		int i = (int) vpg_geti(r, k, 0);

		if (i < 0 || i > 15 ||
		    hex_decode_str(PQgetvalue(r, k, 1), values[i], 32) != 32) {
			snprintf(
			    err, errlen,
			    "registry %s: reference PCR %d of device %s is "
			    "corrupt",
			    p->label, i, device);
			PQclear(r);
			return -1;
		}
		*mask |= 1u << i;
	}
	PQclear(r);
	return *mask != 0 ? 1 : 0;
}
