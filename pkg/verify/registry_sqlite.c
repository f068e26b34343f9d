/*
 * registry_sqlite.c: the embedded registry backend (one SQLite file in WAL
 * mode). Several verifier processes may share the file: every write is one
 * BEGIN IMMEDIATE transaction (the write lock is taken before anything is
 * read, so a read-then-write decision cannot interleave with another
 * process's), and a busy timeout waits for the lock instead of failing.
 */
#include "registry_sqlite.h"

#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define SQ_BUSY_MS 30000 /* how long a writer waits for the lock */

/* Schema migrations: migrations[i] brings version i to version i + 1.
 * Version 1 is the original schema (databases made before versions were
 * recorded have its tables and no schema_version). */
static const char *const migrations[VFY_SCHEMA] = {
    /* 1: devices, bindings, alerts */
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
    " at INTEGER NOT NULL);",
    /* 2: revocation, one alert per EK and device pair (older duplicates
     * folded into the first), acknowledgements, moves */
    "ALTER TABLE devices ADD COLUMN revoked_at INTEGER;"
    "ALTER TABLE devices ADD COLUMN revoked_by TEXT;"
    "ALTER TABLE bindings ADD COLUMN state TEXT NOT NULL DEFAULT 'active';"
    "CREATE INDEX bindings_device ON bindings(device);"
    "ALTER TABLE alerts ADD COLUMN dev_lo TEXT;"
    "ALTER TABLE alerts ADD COLUMN dev_hi TEXT;"
    "ALTER TABLE alerts ADD COLUMN acked_at INTEGER;"
    "ALTER TABLE alerts ADD COLUMN acked_by TEXT;"
    "UPDATE alerts SET dev_lo = min(first_device, second_device),"
    " dev_hi = max(first_device, second_device);"
    "DELETE FROM alerts WHERE rowid NOT IN (SELECT min(rowid) FROM alerts"
    " GROUP BY ek_fp, dev_lo, dev_hi);"
    "CREATE UNIQUE INDEX alerts_pair ON alerts(ek_fp, dev_lo, dev_hi);"
    "CREATE TABLE moves(ek_fp TEXT NOT NULL, from_device TEXT NOT NULL,"
    " to_device TEXT NOT NULL, vm TEXT NOT NULL, by TEXT NOT NULL,"
    " at INTEGER NOT NULL);"
    "CREATE INDEX moves_ek ON moves(ek_fp);",
    /* 3: hardware EK certificates, quote nonces, reference PCR values */
    "CREATE TABLE IF NOT EXISTS hw_eks("
    " device TEXT PRIMARY KEY, ek_cert TEXT NOT NULL, trust TEXT NOT NULL,"
    " at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nonces("
    " nonce TEXT PRIMARY KEY, device TEXT NOT NULL,"
    " issued INTEGER NOT NULL, used INTEGER);"
    "CREATE TABLE IF NOT EXISTS pcr_refs("
    " device TEXT NOT NULL, pcr INTEGER NOT NULL, value TEXT NOT NULL,"
    " at INTEGER NOT NULL, PRIMARY KEY(device, pcr));",
};

int
vsq_dberr(struct sq *s, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "registry sqlite:%s: %s: %s", s->path, what,
	         sqlite3_errmsg(s->db));
	return -1;
}

/* The outcome of a one-row lookup (its last sqlite3_step rc): 0 a row,
 * VFY_NO none, -1 a database error (err set). */
static int
vsq_found(struct sq *s, int rc, const char *what, char *err, size_t errlen)
{
	if (rc == SQLITE_ROW) {
		return 0;
	}
	if (rc == SQLITE_DONE) {
		return VFY_NO;
	}
	return vsq_dberr(s, what, err, errlen);
}

/* Prepare sql and bind args by type: 's' text (NULL binds NULL), 'i'
 * int64. NULL on error (err set). */
sqlite3_stmt *
vsq_prep(struct sq *s, const char *sql, const char *types, char *err,
         size_t errlen, ...)
{
	sqlite3_stmt *st;
	va_list       ap;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		vsq_dberr(s, "prepare", err, errlen);
		return NULL;
	}
	va_start(ap, errlen);
	for (int i = 0; types[i] != '\0'; i++) {
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);

			if (v == NULL) {
				sqlite3_bind_null(st, i + 1);
			} else {
				sqlite3_bind_text(st, i + 1, v, -1,
				                  SQLITE_TRANSIENT);
			}
		} else {
			sqlite3_bind_int64(st, i + 1,
			                   (sqlite3_int64) va_arg(ap, int64_t));
		}
	}
	va_end(ap);
	return st;
}

/* Step a statement that returns no rows; finalize it. Rows changed or -1. */
int
vsq_run(struct sq *s, sqlite3_stmt *st, const char *what, char *err,
        size_t errlen)
{
	int rc;

	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return vsq_dberr(s, what, err, errlen);
	}
	return sqlite3_changes(s->db);
}

void
vsq_col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(dst, len, "%s", t ? (const char *) t : "");
}

int
vsq_exec(struct sq *s, const char *sql, const char *what, char *err,
         size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "registry sqlite:%s: %s: %s", s->path,
		         what, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int
vsq_begin(struct sq *s, char *err, size_t errlen)
{
	return vsq_exec(s, "BEGIN IMMEDIATE", "begin", err, errlen);
}

/* COMMIT when ret >= 0, else ROLLBACK; returns ret (or -1 when the commit
 * fails). */
int
vsq_finish(struct sq *s, int ret, char *err, size_t errlen)
{
	if (ret >= 0) {
		if (vsq_exec(s, "COMMIT", "commit", err, errlen) < 0) {
			(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL,
			                    NULL);
			return -1;
		}
		return ret;
	}
	(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* the version recorded, 0 for none (fresh or made before versions) */
static int
read_version(struct sq *s, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int           v = 0, rc;

	st = vsq_prep(
	    s,
	    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	    "name = 'schema_version'",
	    "", err, errlen);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (v <= 0) {
		return v < 0 ? vsq_dberr(s, "schema", err, errlen) : 0;
	}
	st = vsq_prep(s, "SELECT coalesce(max(version), 0) FROM schema_version",
	              "", err, errlen);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return v < 0 ? vsq_dberr(s, "schema version", err, errlen) : v;
}

static int
migrate(struct sq *s, char *err, size_t errlen)
{
	int v, ret = 0;

	if ((v = read_version(s, err, errlen)) < 0) {
		return -1;
	}
	if (v == VFY_SCHEMA) {
		return 0; /* the common case: no write lock taken */
	}
	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	/* again under the write lock: another process may have migrated */
	if ((v = read_version(s, err, errlen)) < 0 ||
	    vsq_exec(
	        s,
	        "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER "
	        "PRIMARY KEY, applied INTEGER NOT NULL)",
	        "schema", err, errlen) < 0) {
		return vsq_finish(s, -1, err, errlen);
	}
	if (v > VFY_SCHEMA) {
		snprintf(err, errlen,
		         "registry sqlite:%s: schema version %d is newer than "
		         "this vtpm-verify's (%d)",
		         s->path, v, VFY_SCHEMA);
		return vsq_finish(s, -1, err, errlen);
	}
	for (; v < VFY_SCHEMA && ret == 0; v++) {
		char what[64];

		snprintf(what, sizeof(what), "migration to schema %d", v + 1);
		if (vsq_exec(s, migrations[v], what, err, errlen) < 0 ||
		    vsq_run(
		        s,
		        vsq_prep(s,
		                 "INSERT INTO schema_version(version, applied) "
		                 "VALUES(?, ?)",
		                 "ii", err, errlen, (int64_t) v + 1,
		                 (int64_t) time(NULL)),
		        what, err, errlen) < 0) {
			ret = -1;
		}
	}
	return vsq_finish(s, ret, err, errlen);
}

static int
sq_open(void **h, const char *dsn, char *err, size_t errlen)
{
	struct sq *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "registry sqlite:%s: out of memory", dsn);
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s", dsn);
	if (sqlite3_open_v2(dsn, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "registry sqlite:%s: open: %s", dsn,
		         s->db ? sqlite3_errmsg(s->db) : "out of memory");
		sqlite3_close(s->db);
		free(s);
		return -1;
	}
	sqlite3_busy_timeout(s->db, SQ_BUSY_MS);
	/* 16 MiB of page cache: a stream keeps the upper index levels of a
	 * fleet-sized registry in memory */
	if (vsq_exec(s, "PRAGMA journal_mode=WAL; PRAGMA cache_size=-16384",
	             "WAL mode", err, errlen) < 0 ||
	    migrate(s, err, errlen) < 0) {
		sqlite3_close(s->db);
		free(s);
		return -1;
	}
	*h = s;
	return 0;
}

static void
sq_close(void *h)
{
	struct sq *s = h;

	sqlite3_close(s->db);
	free(s);
}

static int
sq_schema_version(void *h, char *err, size_t errlen)
{
	return read_version(h, err, errlen);
}

static int
sq_challenge(void *h, const struct vfy_device *d, char *err, size_t errlen)
{
	struct sq *s = h;
	int        n;

	n = vsq_run(
	    s,
	    vsq_prep(s,
	             "INSERT INTO devices(id, ek_pub, ak_pub, state, "
	             "secret_hash, ak_cert, updated) VALUES(?,?,?,'pending',?,"
	             "'',?) ON CONFLICT(id) DO UPDATE SET ek_pub = "
	             "excluded.ek_pub, ak_pub = excluded.ak_pub, state = "
	             "'pending', secret_hash = excluded.secret_hash, ak_cert = "
	             "'', updated = excluded.updated WHERE devices.state <> "
	             "'revoked'",
	             "ssssi", err, errlen, d->id, d->ek_pub, d->ak_pub,
	             d->secret_hash, (int64_t) time(NULL)),
	    "challenge", err, errlen);
	return n < 0 ? -1 : n == 0 ? VFY_NO : 0;
}

static void
device_row(sqlite3_stmt *st, struct vfy_device *d, bool full)
{
	memset(d, 0, sizeof(*d));
	vsq_col(st, 0, d->id, sizeof(d->id));
	vsq_col(st, 1, d->state, sizeof(d->state));
	d->updated = sqlite3_column_int64(st, 2);
	d->revoked_at = sqlite3_column_int64(st, 3);
	vsq_col(st, 4, d->revoked_by, sizeof(d->revoked_by));
	if (full) {
		vsq_col(st, 5, d->ek_pub, sizeof(d->ek_pub));
		vsq_col(st, 6, d->ak_pub, sizeof(d->ak_pub));
		vsq_col(st, 7, d->secret_hash, sizeof(d->secret_hash));
		vsq_col(st, 8, d->ak_cert, sizeof(d->ak_cert));
	}
}

static int
sq_device_get(void *h, const char *id, struct vfy_device *d, char *err,
              size_t errlen)
{
	struct sq    *s = h;
	sqlite3_stmt *st;
	int           rc;

	st = vsq_prep(
	    s,
	    "SELECT id, state, updated, revoked_at, revoked_by, ek_pub, "
	    "ak_pub, secret_hash, ak_cert FROM devices WHERE id = ?",
	    "s", err, errlen, id);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		device_row(st, d, true);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		return 1;
	}
	return rc == SQLITE_DONE ? 0
	                         : vsq_dberr(s, "select device", err, errlen);
}

static int
sq_activate(void *h, const char *id, const char *secret_hash,
            const char *ak_cert, char *err, size_t errlen)
{
	struct sq *s = h;
	int        n;

	/* one statement: the check of the secret and its consumption are one
	 * write under SQLite's lock */
	n = vsq_run(
	    s,
	    vsq_prep(s,
	             "UPDATE devices SET state = 'active', secret_hash = '', "
	             "ak_cert = ?, updated = ? WHERE id = ? AND state = "
	             "'pending' AND secret_hash = ?",
	             "siss", err, errlen, ak_cert, (int64_t) time(NULL), id,
	             secret_hash),
	    "activate", err, errlen);
	return n < 0 ? -1 : n == 0 ? VFY_NO : 0;
}

static int
report_tx(struct sq *s, const char *ek_fp, const char *device, const char *vm,
          struct vfy_verdict *v, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	const char   *lo, *hi;
	int64_t       now = (int64_t) time(NULL);
	int           rc;

	st = vsq_prep(
	    s,
	    "SELECT device FROM bindings WHERE ek_fp = ? AND device <> ? "
	    "AND state = 'active' ORDER BY first_seen, device LIMIT 1",
	    "ss", err, errlen, ek_fp, device);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		vsq_col(st, 0, v->other, sizeof(v->other));
		v->clone = true;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return vsq_dberr(s, "select binding", err, errlen);
	}
	if (vsq_run(
	        s,
	        vsq_prep(s,
	                 "INSERT INTO bindings(ek_fp, device, vm, first_seen, "
	                 "last_seen, state) VALUES(?,?,?,?,?,'active') ON "
	                 "CONFLICT(ek_fp, device) DO UPDATE SET last_seen = "
	                 "excluded.last_seen, vm = excluded.vm",
	                 "sssii", err, errlen, ek_fp, device, vm, now, now),
	        "insert binding", err, errlen) < 0) {
		return -1;
	}
	if (!v->clone) {
		return 0;
	}
	vfy_pair(v->other, device, &lo, &hi);
	rc = vsq_run(
	    s,
	    vsq_prep(s,
	             "INSERT INTO alerts(ek_fp, first_device, second_device, "
	             "vm, at, dev_lo, dev_hi) VALUES(?,?,?,?,?,?,?) ON "
	             "CONFLICT(ek_fp, dev_lo, dev_hi) DO NOTHING",
	             "ssssiss", err, errlen, ek_fp, v->other, device, vm, now,
	             lo, hi),
	    "insert alert", err, errlen);
	if (rc < 0) {
		return -1;
	}
	v->alert_new = rc == 1;
	st = vsq_prep(
	    s,
	    "SELECT rowid FROM alerts WHERE ek_fp = ? AND dev_lo = ? AND "
	    "dev_hi = ?",
	    "sss", err, errlen, ek_fp, lo, hi);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		v->alert_id = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : vsq_dberr(s, "select alert", err, errlen);
}

static int
sq_report(void *h, const char *ek_fp, const char *device, const char *vm,
          struct vfy_verdict *v, char *err, size_t errlen)
{
	struct sq *s = h;

	memset(v, 0, sizeof(*v));
	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	return vsq_finish(s, report_tx(s, ek_fp, device, vm, v, err, errlen),
	                  err, errlen);
}

static int
move_tx(struct sq *s, const char *ek_fp, const char *to, const char *by,
        char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char          vm[UUID_LEN] = "";
	int64_t       now = (int64_t) time(NULL);
	int           rc, n;

	st = vsq_prep(s, "SELECT state FROM devices WHERE id = ?", "s", err,
	              errlen, to);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	n = rc == SQLITE_ROW &&
	    strcmp((const char *) sqlite3_column_text(st, 0), "active") == 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return vsq_dberr(s, "select device", err, errlen);
	}
	if (!n) {
		return VFY_NO_DEV;
	}
	st = vsq_prep(s,
	              "SELECT vm FROM bindings WHERE ek_fp = ? AND state = "
	              "'active' ORDER BY first_seen, device LIMIT 1",
	              "s", err, errlen, ek_fp);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		vsq_col(st, 0, vm, sizeof(vm));
	}
	sqlite3_finalize(st);
	if ((rc = vsq_found(s, rc, "select binding", err, errlen)) != 0) {
		return rc;
	}
	if (vsq_run(
	        s,
	        vsq_prep(
	            s,
	            "INSERT INTO moves(ek_fp, from_device, to_device, vm, by, "
	            "at) SELECT ek_fp, device, ?, vm, ?, ? FROM bindings WHERE "
	            "ek_fp = ? AND device <> ? AND state = 'active'",
	            "ssiss", err, errlen, to, by, now, ek_fp, to),
	        "record move", err, errlen) < 0 ||
	    vsq_run(
	        s,
	        vsq_prep(
	            s,
	            "DELETE FROM bindings WHERE ek_fp = ? AND device <> ? AND "
	            "state = 'active'",
	            "ss", err, errlen, ek_fp, to),
	        "delete bindings", err, errlen) < 0 ||
	    vsq_run(
	        s,
	        vsq_prep(s,
	                 "INSERT INTO bindings(ek_fp, device, vm, first_seen, "
	                 "last_seen, state) VALUES(?,?,?,?,?,'active') ON "
	                 "CONFLICT(ek_fp, device) DO NOTHING",
	                 "sssii", err, errlen, ek_fp, to, vm, now, now),
	        "insert binding", err, errlen) < 0) {
		return -1;
	}
	return 0;
}

static int
sq_move(void *h, const char *ek_fp, const char *to, const char *by, char *err,
        size_t errlen)
{
	struct sq *s = h;

	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	return vsq_finish(s, move_tx(s, ek_fp, to, by, err, errlen), err,
	                  errlen);
}

static int
revoke_tx(struct sq *s, const char *id, const char *by, char *err,
          size_t errlen)
{
	sqlite3_stmt *st;
	int           rc;

	st = vsq_prep(s, "SELECT 1 FROM devices WHERE id = ?", "s", err, errlen,
	              id);
	if (st == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((rc = vsq_found(s, rc, "select device", err, errlen)) != 0) {
		return rc;
	}
	if (vsq_run(
	        s,
	        vsq_prep(
	            s,
	            "UPDATE devices SET state = 'revoked', secret_hash = '', "
	            "revoked_at = ?, revoked_by = ?, updated = ? WHERE id = ? "
	            "AND state <> 'revoked'",
	            "isis", err, errlen, (int64_t) time(NULL), by,
	            (int64_t) time(NULL), id),
	        "revoke device", err, errlen) < 0 ||
	    vsq_run(
	        s,
	        vsq_prep(
	            s, "UPDATE bindings SET state = 'revoked' WHERE device = ?",
	            "s", err, errlen, id),
	        "revoke bindings", err, errlen) < 0) {
		return -1;
	}
	return 0;
}

static int
sq_revoke(void *h, const char *id, const char *by, char *err, size_t errlen)
{
	struct sq *s = h;

	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	return vsq_finish(s, revoke_tx(s, id, by, err, errlen), err, errlen);
}

static const char alert_cols[] =
    "SELECT rowid, ek_fp, first_device, second_device, vm, at, "
    "coalesce(acked_at, 0), coalesce(acked_by, '') FROM alerts ";

static void
alert_row(sqlite3_stmt *st, struct vfy_alert *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	vsq_col(st, 1, a->ek_fp, sizeof(a->ek_fp));
	vsq_col(st, 2, a->first, sizeof(a->first));
	vsq_col(st, 3, a->second, sizeof(a->second));
	vsq_col(st, 4, a->vm, sizeof(a->vm));
	a->at = sqlite3_column_int64(st, 5);
	a->acked_at = sqlite3_column_int64(st, 6);
	vsq_col(st, 7, a->acked_by, sizeof(a->acked_by));
}

static int
ack_tx(struct sq *s, int64_t id, const char *by, struct vfy_alert *a, char *err,
       size_t errlen)
{
	sqlite3_stmt *st;
	char          sql[256];
	int           rc;

	snprintf(sql, sizeof(sql), "%sWHERE rowid = ?", alert_cols);
	if ((st = vsq_prep(s, sql, "i", err, errlen, id)) == NULL) {
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		alert_row(st, a);
	}
	sqlite3_finalize(st);
	if ((rc = vsq_found(s, rc, "select alert", err, errlen)) != 0) {
		return rc;
	}
	if (a->acked_at != 0) {
		return VFY_NO_DEV;
	}
	a->acked_at = (int64_t) time(NULL);
	snprintf(a->acked_by, sizeof(a->acked_by), "%s", by);
	return vsq_run(s,
	               vsq_prep(
	                   s,
	                   "UPDATE alerts SET acked_at = ?, acked_by = ? WHERE "
	                   "rowid = ?",
	                   "isi", err, errlen, a->acked_at, by, id),
	               "acknowledge alert", err, errlen) < 0
	           ? -1
	           : 0;
}

static int
sq_ack(void *h, int64_t id, const char *by, struct vfy_alert *a, char *err,
       size_t errlen)
{
	struct sq *s = h;

	if (vsq_begin(s, err, errlen) < 0) {
		return -1;
	}
	return vsq_finish(s, ack_tx(s, id, by, a, err, errlen), err, errlen);
}

static const char *
nz(const char *f)
{
	return f != NULL && f[0] != '\0' ? f : NULL;
}

static int
sq_devices(void *h, const struct vfy_filter                        *f,
           void (*fn)(void *arg, const struct vfy_device *d), void *arg,
           char *err, size_t errlen)
{
	struct sq        *s = h;
	struct vfy_device d;
	sqlite3_stmt     *st;
	int               rc;

	st = vsq_prep(
	    s,
	    "SELECT id, state, updated, coalesce(revoked_at, 0), "
	    "coalesce(revoked_by, '') FROM devices WHERE (?1 IS NULL OR "
	    "id = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY id",
	    "ss", err, errlen, nz(f->device), nz(f->state));
	if (st == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		device_row(st, &d, false);
		fn(arg, &d);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
	                         : vsq_dberr(s, "select devices", err, errlen);
}

static int
sq_bindings(void *h, const struct vfy_filter                         *f,
            void (*fn)(void *arg, const struct vfy_binding *b), void *arg,
            char *err, size_t errlen)
{
	struct sq         *s = h;
	struct vfy_binding b;
	sqlite3_stmt      *st;
	int                rc;

	st = vsq_prep(
	    s,
	    "SELECT ek_fp, device, vm, state, first_seen, last_seen FROM "
	    "bindings WHERE (?1 IS NULL OR device = ?1) AND (?2 IS NULL "
	    "OR ek_fp = ?2) AND (?3 IS NULL OR state = ?3) ORDER BY "
	    "first_seen, ek_fp, device",
	    "sss", err, errlen, nz(f->device), nz(f->ek_fp), nz(f->state));
	if (st == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&b, 0, sizeof(b));
		vsq_col(st, 0, b.ek_fp, sizeof(b.ek_fp));
		vsq_col(st, 1, b.device, sizeof(b.device));
		vsq_col(st, 2, b.vm, sizeof(b.vm));
		vsq_col(st, 3, b.state, sizeof(b.state));
		b.first_seen = sqlite3_column_int64(st, 4);
		b.last_seen = sqlite3_column_int64(st, 5);
		fn(arg, &b);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
	                         : vsq_dberr(s, "select bindings", err, errlen);
}

static int
sq_alerts(void *h, void (*fn)(void *arg, const struct vfy_alert *a), void *arg,
          char *err, size_t errlen)
{
	struct sq       *s = h;
	struct vfy_alert a;
	sqlite3_stmt    *st;
	char             sql[256];
	int              rc;

	snprintf(sql, sizeof(sql), "%sORDER BY rowid", alert_cols);
	if ((st = vsq_prep(s, sql, "", err, errlen)) == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		alert_row(st, &a);
		fn(arg, &a);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
	                         : vsq_dberr(s, "select alerts", err, errlen);
}

static int
sq_moves(void *h, const struct vfy_filter                      *f,
         void (*fn)(void *arg, const struct vfy_move *m), void *arg, char *err,
         size_t errlen)
{
	struct sq      *s = h;
	struct vfy_move m;
	sqlite3_stmt   *st;
	int             rc;

	st = vsq_prep(
	    s,
	    "SELECT ek_fp, from_device, to_device, vm, by, at FROM moves "
	    "WHERE (?1 IS NULL OR ek_fp = ?1) ORDER BY rowid",
	    "s", err, errlen, nz(f->ek_fp));
	if (st == NULL) {
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&m, 0, sizeof(m));
		vsq_col(st, 0, m.ek_fp, sizeof(m.ek_fp));
		vsq_col(st, 1, m.from, sizeof(m.from));
		vsq_col(st, 2, m.to, sizeof(m.to));
		vsq_col(st, 3, m.vm, sizeof(m.vm));
		vsq_col(st, 4, m.by, sizeof(m.by));
		m.at = sqlite3_column_int64(st, 5);
		fn(arg, &m);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0
	                         : vsq_dberr(s, "select moves", err, errlen);
}

const struct registry_ops vfy_registry_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .challenge = sq_challenge,
    .device_get = sq_device_get,
    .activate = sq_activate,
    .report = sq_report,
    .move = sq_move,
    .revoke = sq_revoke,
    .ack = sq_ack,
    .devices = sq_devices,
    .bindings = sq_bindings,
    .alerts = sq_alerts,
    .moves = sq_moves,
    .schema_version = sq_schema_version,
    .hw_ek_put = vsq_hw_ek_put,
    .hw_ek_get = vsq_hw_ek_get,
    .nonce_add = vsq_nonce_add,
    .nonce_take = vsq_nonce_take,
    .ref_put = vsq_ref_put,
    .ref_get = vsq_ref_get,
};
