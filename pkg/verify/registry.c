/*
 * registry.c: the verifier's registry (device AKs, EK -> device bindings,
 * clone alerts, hardware EK certificates, quote nonces, reference PCR
 * values) behind struct registry_ops; the SQLite backend.
 *
 * Two steps of schema: the original tables (devices, bindings, alerts),
 * then the attestation tables (hw_eks, nonces, pcr_refs) in one separate
 * statement list, schema_attest_sql, written as one migration: every
 * table is CREATE IF NOT EXISTS, so a registry made before it gets the
 * new tables on open and keeps its data.
 */
#include "verify.h"
#include "common.h"
#include "tpm_ek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS devices("
    " id TEXT PRIMARY KEY, ek_pub TEXT NOT NULL, ak_pub TEXT NOT NULL,"
    " state TEXT NOT NULL, secret_hash TEXT, ak_cert TEXT,"
    " updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bindings("
    " ek_fp TEXT NOT NULL, device TEXT NOT NULL, vm TEXT NOT NULL,"
    " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " PRIMARY KEY(ek_fp, device));"
    "CREATE TABLE IF NOT EXISTS alerts("
    " ek_fp TEXT NOT NULL, first_device TEXT NOT NULL,"
    " second_device TEXT NOT NULL, vm TEXT NOT NULL,"
    " at INTEGER NOT NULL);";

/* The attestation tables: hardware EK certificates, quote nonces (one use
 * each), reference PCR values per device. */
static const char schema_attest_sql[] =
    "CREATE TABLE IF NOT EXISTS hw_eks("
    " device TEXT PRIMARY KEY, ek_cert TEXT NOT NULL, trust TEXT NOT NULL,"
    " at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nonces("
    " nonce TEXT PRIMARY KEY, device TEXT NOT NULL,"
    " issued INTEGER NOT NULL, used INTEGER);"
    "CREATE TABLE IF NOT EXISTS pcr_refs("
    " device TEXT NOT NULL, pcr INTEGER NOT NULL, value TEXT NOT NULL,"
    " at INTEGER NOT NULL, PRIMARY KEY(device, pcr));";

static int
dberr(sqlite3 *db, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "sqlite %s: %s", what, sqlite3_errmsg(db));
	return -1;
}

static int
sq_open(void **h, const char *dsn, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char    *msg = NULL;

	if (sqlite3_open_v2(dsn, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite open %s: %s", dsn,
		         db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, schema_attest_sql, NULL, NULL, &msg) !=
	        SQLITE_OK) {
		snprintf(err, errlen, "sqlite schema in %s: %s", dsn,
		         msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		return -1;
	}
	*h = db;
	return 0;
}

static void
sq_close(void *h)
{
	sqlite3_close(h);
}

static void
col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(dst, len, "%s", t ? (const char *) t : "");
}

static int
sq_device_put(void *h, const struct vfy_device *d, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT OR REPLACE INTO devices(id, ek_pub, "
	                       "ak_pub, state, secret_hash, ak_cert, updated) "
	                       "VALUES(?,?,?,?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->ek_pub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->ak_pub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d->secret_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, d->ak_cert, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64) time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "insert device", err, errlen);
}

static int
sq_device_get(void *h, const char *id, struct vfy_device *d, char *err,
              size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	memset(d, 0, sizeof(*d));
	if (sqlite3_prepare_v2(db,
	                       "SELECT id, ek_pub, ak_pub, state, secret_hash, "
	                       "ak_cert FROM devices WHERE id = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col(st, 0, d->id, sizeof(d->id));
		col(st, 1, d->ek_pub, sizeof(d->ek_pub));
		col(st, 2, d->ak_pub, sizeof(d->ak_pub));
		col(st, 3, d->state, sizeof(d->state));
		col(st, 4, d->secret_hash, sizeof(d->secret_hash));
		col(st, 5, d->ak_cert, sizeof(d->ak_cert));
		sqlite3_finalize(st);
		return 1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "select device", err, errlen);
}

static int
sq_bind(void *h, const char *ek_fp, const char *device, const char *vm,
        char *other, size_t otherlen, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc, found = 0;

	other[0] = '\0';
	if (sqlite3_prepare_v2(db,
	                       "SELECT device FROM bindings WHERE ek_fp = ? "
	                       "AND device <> ? ORDER BY first_seen LIMIT 1",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, ek_fp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col(st, 0, other, otherlen);
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return dberr(db, "select binding", err, errlen);
	}
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO bindings(ek_fp, device, vm, "
	                       "first_seen, last_seen) VALUES(?,?,?,?,?) "
	                       "ON CONFLICT(ek_fp, device) DO UPDATE SET "
	                       "last_seen = excluded.last_seen, vm = "
	                       "excluded.vm",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, ek_fp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, vm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64) time(NULL));
	sqlite3_bind_int64(st, 5, (sqlite3_int64) time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return dberr(db, "insert binding", err, errlen);
	}
	return found;
}

static int
sq_alert_add(void *h, const char *ek_fp, const char *first, const char *second,
             const char *vm, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO alerts(ek_fp, first_device, "
	                       "second_device, vm, at) VALUES(?,?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, ek_fp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, first, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, second, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, vm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64) time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "insert alert", err, errlen);
}

static int
sq_alert_count(void *h, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           n = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM alerts", -1, &st,
	                       NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	return n;
}

static int
sq_alert_list(void *h,
              void (*fn)(void *arg, const char *ek_fp, const char *first,
                         const char *second, const char *vm, int64_t at),
              void *arg, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT ek_fp, first_device, second_device, vm, "
	                       "at FROM alerts ORDER BY rowid",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, (const char *) sqlite3_column_text(st, 0),
		   (const char *) sqlite3_column_text(st, 1),
		   (const char *) sqlite3_column_text(st, 2),
		   (const char *) sqlite3_column_text(st, 3),
		   (int64_t) sqlite3_column_int64(st, 4));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "select alerts", err, errlen);
}

static int
sq_hw_ek_put(void *h, const char *device, const char *ek_cert,
             const char *trust, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT OR REPLACE INTO hw_eks(device, ek_cert, "
	                       "trust, at) VALUES(?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ek_cert, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, trust, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64) time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "insert hw_ek", err, errlen);
}

static int
sq_hw_ek_get(void *h, const char *device, char *ek_cert, size_t certlen,
             char *trust, size_t trustlen, char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	ek_cert[0] = trust[0] = '\0';
	if (sqlite3_prepare_v2(db,
	                       "SELECT ek_cert, trust FROM hw_eks WHERE "
	                       "device = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col(st, 0, ek_cert, certlen);
		col(st, 1, trust, trustlen);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		return 1;
	}
	return rc == SQLITE_DONE ? 0 : dberr(db, "select hw_ek", err, errlen);
}

static int
sq_nonce_add(void *h, const char *device, const char *nonce, char *err,
             size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO nonces(nonce, device, issued) "
	                       "VALUES(?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, nonce, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : dberr(db, "insert nonce", err, errlen);
}

static int
sq_nonce_take(void *h, const char *device, const char *nonce, char *err,
              size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc, n;

	/* one statement: two checks racing on one nonce cannot both win */
	if (sqlite3_prepare_v2(db,
	                       "UPDATE nonces SET used = ? WHERE nonce = ? AND "
	                       "device = ? AND used IS NULL",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64) time(NULL));
	sqlite3_bind_text(st, 2, nonce, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, device, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return dberr(db, "update nonce", err, errlen);
	}
	if (sqlite3_changes(db) == 1) {
		return 1;
	}
	if (sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM nonces WHERE nonce = ? "
	                       "AND device = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, nonce, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device, -1, SQLITE_STATIC);
	n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0) {
		return dberr(db, "select nonce", err, errlen);
	}
	return n > 0 ? 2 : 0;
}

static int
sq_ref_put(void *h, const char *device, uint32_t mask,
           const uint8_t values[16][32], char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st = NULL;
	char          hex[65];
	int           rc = SQLITE_DONE;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		return dberr(db, "begin", err, errlen);
	}
	if (sqlite3_prepare_v2(db, "DELETE FROM pcr_refs WHERE device = ?", -1,
	                       &st, NULL) != SQLITE_OK) {
		goto fail;
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO pcr_refs(device, pcr, value, at) "
	                       "VALUES(?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		goto fail;
	}
	for (int i = 0; i < 16 && rc == SQLITE_DONE; i++) {
		if (!(mask & (1u << i))) {
			continue;
		}
		hex_encode(values[i], 32, hex, sizeof(hex));
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, i);
		sqlite3_bind_text(st, 3, hex, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, (sqlite3_int64) time(NULL));
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		goto fail;
	}
	return 0;
fail:
	dberr(db, "store reference PCRs", err, errlen);
	(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
sq_ref_get(void *h, const char *device, uint32_t *mask, uint8_t values[16][32],
           char *err, size_t errlen)
{
	sqlite3      *db = h;
	sqlite3_stmt *st;
	int           rc;

	*mask = 0;
	if (sqlite3_prepare_v2(db,
	                       "SELECT pcr, value FROM pcr_refs WHERE device = "
	                       "? ORDER BY pcr",
	                       -1, &st, NULL) != SQLITE_OK) {
		return dberr(db, "prepare", err, errlen);
	}
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int         i = sqlite3_column_int(st, 0);
		const char *v = (const char *) sqlite3_column_text(st, 1);

		if (i < 0 || i > 15 || v == NULL ||
		    hex_decode_str(v, values[i], 32) != 32) {
			sqlite3_finalize(st);
			snprintf(err, errlen,
			         "reference PCR %d of device %s is corrupt", i,
			         device);
			return -1;
		}
		*mask |= 1u << i;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return dberr(db, "select reference PCRs", err, errlen);
	}
	return *mask != 0 ? 1 : 0;
}

const struct registry_ops vfy_registry_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .device_put = sq_device_put,
    .device_get = sq_device_get,
    .bind = sq_bind,
    .alert_add = sq_alert_add,
    .alert_count = sq_alert_count,
    .alert_list = sq_alert_list,
    .hw_ek_put = sq_hw_ek_put,
    .hw_ek_get = sq_hw_ek_get,
    .nonce_add = sq_nonce_add,
    .nonce_take = sq_nonce_take,
    .ref_put = sq_ref_put,
    .ref_get = sq_ref_get,
};

int
vfy_registry_open(struct registry *r, const char *dsn, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (strncmp(dsn, "sqlite:", 7) == 0) {
		dsn += 7;
	} else if (strstr(dsn, "://") != NULL) {
		snprintf(err, errlen,
		         "registry %s: only SQLite is built in (a PostgreSQL "
		         "backend would be one more struct registry_ops)",
		         dsn);
		return -1;
	}
	r->ops = &vfy_registry_sqlite;
	return r->ops->open(&r->h, dsn, err, errlen);
}

void
vfy_registry_close(struct registry *r)
{
	if (r->ops != NULL && r->h != NULL) {
		r->ops->close(r->h);
	}
	r->h = NULL;
}
