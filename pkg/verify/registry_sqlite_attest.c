/*
 * registry_sqlite_attest.c: the attestation tables on SQLite (schema 3):
 * hardware EK certificates, one-use quote nonces, reference PCR values.
 */
#include "registry_sqlite.h"

#include "common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int
vsq_hw_ek_put(void *h, const char *device, const char *ek_cert,
              const char *trust, char *err, size_t errlen)
{
	struct sq *s = h;

	return vsq_run(
	           s,
	           vsq_prep(
	               s,
	               "INSERT OR REPLACE INTO hw_eks(device, ek_cert, trust, "
	               "at) VALUES(?,?,?,?)",
	               "sssi", err, errlen, device, ek_cert, trust,
	               (int64_t) time(NULL)),
	           "store hardware EK", err, errlen) < 0
	           ? -1
	           : 0;
}

int
vsq_hw_ek_get(void *h, const char *device, char *ek_cert, size_t certlen,
              char *trust, size_t trustlen, char *err, size_t errlen)
{
	struct sq    *s = h;
	sqlite3_stmt *st;
	int           rc;

	ek_cert[0] = trust[0] = '\0';
	st = vsq_prep(s, "SELECT ek_cert, trust FROM hw_eks WHERE device = ?",
	              "s", err, errlen, device);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		vsq_col(st, 0, ek_cert, certlen);
		vsq_col(st, 1, trust, trustlen);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		return 1;
	}
	return rc == SQLITE_DONE
	           ? 0
	           : vsq_dberr(s, "select hardware EK", err, errlen);
}

int
vsq_nonce_add(void *h, const char *device, const char *nonce, char *err,
              size_t errlen)
{
	struct sq *s = h;

	return vsq_run(s,
	               vsq_prep(s,
	                        "INSERT INTO nonces(nonce, device, issued) "
	                        "VALUES(?,?,?)",
	                        "ssi", err, errlen, nonce, device,
	                        (int64_t) time(NULL)),
	               "insert nonce", err, errlen) < 0
	           ? -1
	           : 0;
}

int
vsq_nonce_take(void *h, const char *device, const char *nonce, char *err,
               size_t errlen)
{
	struct sq    *s = h;
	sqlite3_stmt *st;
	int           n;

	/* one statement: two checks racing on one nonce cannot both win */
	n = vsq_run(
	    s,
	    vsq_prep(
	        s,
	        "UPDATE nonces SET used = ? WHERE nonce = ? AND device = ? "
	        "AND used IS NULL",
	        "iss", err, errlen, (int64_t) time(NULL), nonce, device),
	    "use nonce", err, errlen);
	if (n != 0) {
		return n < 0 ? -1 : 1;
	}
	st = vsq_prep(
	    s, "SELECT count(*) FROM nonces WHERE nonce = ? AND device = ?",
	    "ss", err, errlen, nonce, device);
	if (st == NULL) {
		return -1;
	}
	n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0) {
		return vsq_dberr(s, "select nonce", err, errlen);
	}
	return n > 0 ? 2 : 0;
}

static int
ref_put_tx(struct sq *s, const char *device, uint32_t mask,
           const uint8_t values[16][32], char *err, size_t errlen)
{
	char hex[65];

	if (vsq_run(s,
	            vsq_prep(s, "DELETE FROM pcr_refs WHERE device = ?", "s",
	                     err, errlen, device),
	            "delete reference PCRs", err, errlen) < 0) {
		return -1;
	}
	for (int i = 0; i < 16; i++) {
		if (!(mask & (1u << i))) {
			continue;
		}
		hex_encode(values[i], 32, hex, sizeof(hex));
		if (vsq_run(
		        s,
		        vsq_prep(s,
		                 "INSERT INTO pcr_refs(device, pcr, value, at) "
		                 "VALUES(?,?,?,?)",
		                 "sisi", err, errlen, device, (int64_t) i, hex,
		                 (int64_t) time(NULL)),
		        "store reference PCRs", err, errlen) < 0) {
			return -1;
		}
	}
	return 0;
}

int
vsq_ref_put(void *h, const char *device, uint32_t mask,
            const uint8_t values[16][32], char *err, size_t errlen)
{
	struct sq *s = h;

	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	return vsq_finish(s, ref_put_tx(s, device, mask, values, err, errlen),
	                  err, errlen);
}

int
vsq_ref_get(void *h, const char *device, uint32_t *mask, uint8_t values[16][32],
            char *err, size_t errlen)
{
	struct sq    *s = h;
	sqlite3_stmt *st;
	int           rc;

	*mask = 0;
	st = vsq_prep(
	    s, "SELECT pcr, value FROM pcr_refs WHERE device = ? ORDER BY pcr",
	    "s", err, errlen, device);
	if (st == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int         i = sqlite3_column_int(st, 0);
		const char *v = (const char *) sqlite3_column_text(st, 1);

		if (i < 0 || i > 15 || v == NULL ||
		    hex_decode_str(v, values[i], 32) != 32) {
			sqlite3_finalize(st);
			snprintf(
			    err, errlen,
			    "registry sqlite:%s: reference PCR %d of device %s "
			    "is corrupt",
			    s->path, i, device);
			return -1;
		}
		*mask |= 1u << i;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return vsq_dberr(s, "select reference PCRs", err, errlen);
	}
	return *mask != 0 ? 1 : 0;
}
