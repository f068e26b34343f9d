/*
 * registry.c: the verifier's registry (device AKs, EK -> device bindings,
 * clone alerts) behind struct registry_ops; the SQLite backend.
 */
#include "verify.h"

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
	if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
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
