/*
 * registry_pg.c: the PostgreSQL registry backend (libpq), for a fleet:
 * many verifier processes on one database. Decisions that read and then
 * write (a report's binding and clone alert, a move, a revocation, an
 * acknowledgement) run in SERIALIZABLE transactions and are retried when
 * PostgreSQL reports a serialization failure or deadlock (SQLSTATE 40001,
 * 40P01); one alert per EK and device pair is also a unique key, and an
 * activation consumes its challenge in one conditional UPDATE (row lock).
 * A lost connection fails the operation in progress (the server rolls
 * its transaction back: nothing half written) and is re-established by
 * the next one.
 */
#include "registry_pg.h"

#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PG_LOCK_KEY 730517 /* advisory lock serializing migrations */

/* migrations[i] brings version i to i + 1; the same numbering as the
 * SQLite backend (registry_sqlite.c). */
static const char *const migrations[VFY_SCHEMA] = {
    /* 1: devices, bindings, alerts */
    "CREATE TABLE IF NOT EXISTS devices("
    " id text PRIMARY KEY, ek_pub text NOT NULL, ak_pub text NOT NULL,"
    " state text NOT NULL, secret_hash text, ak_cert text,"
    " updated bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bindings("
    " ek_fp text NOT NULL, device text NOT NULL, vm text NOT NULL,"
    " first_seen bigint NOT NULL, last_seen bigint NOT NULL,"
    " PRIMARY KEY(ek_fp, device));"
    "CREATE TABLE IF NOT EXISTS alerts("
    " ek_fp text NOT NULL, first_device text NOT NULL,"
    " second_device text NOT NULL, vm text NOT NULL,"
    " at bigint NOT NULL);",
    /* 2: revocation, one alert per EK and device pair, acknowledgements,
     * moves */
    "ALTER TABLE devices ADD COLUMN revoked_at bigint,"
    " ADD COLUMN revoked_by text;"
    "ALTER TABLE bindings ADD COLUMN state text NOT NULL DEFAULT 'active';"
    "CREATE INDEX bindings_device ON bindings(device);"
    "ALTER TABLE alerts ADD COLUMN id bigserial,"
    " ADD COLUMN dev_lo text, ADD COLUMN dev_hi text,"
    " ADD COLUMN acked_at bigint, ADD COLUMN acked_by text;"
    "UPDATE alerts SET dev_lo = least(first_device, second_device),"
    " dev_hi = greatest(first_device, second_device);"
    "DELETE FROM alerts a USING alerts b WHERE a.ek_fp = b.ek_fp"
    " AND a.dev_lo = b.dev_lo AND a.dev_hi = b.dev_hi AND a.id > b.id;"
    "ALTER TABLE alerts ADD PRIMARY KEY(id);"
    "CREATE UNIQUE INDEX alerts_pair ON alerts(ek_fp, dev_lo, dev_hi);"
    "CREATE TABLE moves(id bigserial PRIMARY KEY, ek_fp text NOT NULL,"
    " from_device text NOT NULL, to_device text NOT NULL, vm text NOT NULL,"
    " by text NOT NULL, at bigint NOT NULL);"
    "CREATE INDEX moves_ek ON moves(ek_fp);",
    /* 3: hardware EK certificates, quote nonces, reference PCR values */
    "CREATE TABLE hw_eks(device text PRIMARY KEY, ek_cert text NOT NULL,"
    " trust text NOT NULL, at bigint NOT NULL);"
    "CREATE TABLE nonces(nonce text PRIMARY KEY, device text NOT NULL,"
    " issued bigint NOT NULL, used bigint);"
    "CREATE TABLE pcr_refs(device text NOT NULL, pcr integer NOT NULL,"
    " value text NOT NULL, at bigint NOT NULL, PRIMARY KEY(device, pcr));",
};

static int
version_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	PGresult *r;
	int       v = 0;

	(void) arg;
	r = vpg_q(p, "SELECT to_regclass('schema_version') IS NOT NULL",
	          "schema", err, errlen, 0);
	if (r == NULL) {
		return -1;
	}
	if (PQgetvalue(r, 0, 0)[0] == 't') {
		PQclear(r);
		r = vpg_q(
		    p, "SELECT coalesce(max(version), 0) FROM schema_version",
		    "schema version", err, errlen, 0);
		if (r == NULL) {
			return -1;
		}
		v = (int) vpg_geti(r, 0, 0);
	}
	PQclear(r);
	return v;
}

static int
migrate_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	char ver[16], now[24], what[64];
	int  v;

	(void) arg;
	if ((v = version_body(p, NULL, err, errlen)) < 0 ||
	    vpg_cmd(p,
	            "CREATE TABLE IF NOT EXISTS schema_version(version integer "
	            "PRIMARY KEY, applied bigint NOT NULL)",
	            "schema", err, errlen, 0) < 0) {
		return -1;
	}
	if (v > VFY_SCHEMA) {
		snprintf(err, errlen,
		         "registry %s: schema version %d is newer than this "
		         "vtpm-verify's (%d)",
		         p->label, v, VFY_SCHEMA);
		p->sqlstate[0] = '\0';
		return -1;
	}
	for (; v < VFY_SCHEMA; v++) {
		snprintf(what, sizeof(what), "migration to schema %d", v + 1);
		snprintf(ver, sizeof(ver), "%d", v + 1);
		vpg_i64s((int64_t) time(NULL), now, sizeof(now));
		if (vpg_cmd(p, migrations[v], what, err, errlen, 0) < 0 ||
		    vpg_cmd(p,
		            "INSERT INTO schema_version(version, applied) "
		            "VALUES($1, $2)",
		            what, err, errlen, 2, ver, now) < 0) {
			return -1;
		}
	}
	return 0;
}

/* One migrating verifier at a time: a session lock taken before the
 * migration's transaction begins, so that a verifier that waited sees the
 * tables the one before it committed (a transaction begun before they
 * existed may keep its cached "no such table"); the others then find the
 * schema current. */
static int
migrate(struct pg *p, char *err, size_t errlen)
{
	char lock[32];
	int  ret;

	snprintf(lock, sizeof(lock), "%d", PG_LOCK_KEY);
	if (vpg_cmd(p, "SELECT pg_advisory_lock($1::bigint)", "schema lock",
	            err, errlen, 1, lock) < 0) {
		return -1;
	}
	ret = vpg_tx(p, "BEGIN", migrate_body, NULL, err, errlen);
	if (PQstatus(p->c) == CONNECTION_OK) {
		PQclear(PQexecParams(
		    p->c, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL,
		    (const char *const[]){lock}, NULL, NULL, 0));
	}
	return ret;
}

static int
pg_open(void **h, const char *dsn, char *err, size_t errlen)
{
	struct pg *p = calloc(1, sizeof(*p));
	int        v;

	if (p == NULL) {
		snprintf(err, errlen, "registry postgresql: out of memory");
		return -1;
	}
	p->seed = (unsigned) getpid() ^ (unsigned) time(NULL);
	p->c = PQconnectdb(dsn);
	if (p->c == NULL) {
		snprintf(err, errlen, "registry postgresql: out of memory");
		free(p);
		return -1;
	}
	vpg_set_label(p);
	if (PQstatus(p->c) != CONNECTION_OK) {
		vpg_fail(p, "connect", PQerrorMessage(p->c), err, errlen);
		goto bad;
	}
	/* the common case without the lock: the schema is current */
	PQclear(PQexec(p->c, "SET client_min_messages = warning"));
	if ((v = version_body(p, NULL, err, errlen)) < 0) {
		goto bad;
	}
	if (v != VFY_SCHEMA && migrate(p, err, errlen) < 0) {
		goto bad;
	}
	*h = p;
	return 0;
bad:
	vpg_forget_statements(p);
	PQfinish(p->c);
	free(p);
	return -1;
}

static void
pg_close(void *h)
{
	struct pg *p = h;

	vpg_forget_statements(p);
	PQfinish(p->c);
	free(p);
}

static int
pg_schema_version(void *h, char *err, size_t errlen)
{
	struct pg *p = h;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	return version_body(p, NULL, err, errlen);
}

static int
pg_challenge(void *h, const struct vfy_device *d, char *err, size_t errlen)
{
	struct pg *p = h;
	char       now[24];
	int        n;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	n = vpg_cmd(
	    p,
	    "INSERT INTO devices(id, ek_pub, ak_pub, state, secret_hash, "
	    "ak_cert, updated) VALUES($1, $2, $3, 'pending', $4, '', $5) "
	    "ON CONFLICT(id) DO UPDATE SET ek_pub = excluded.ek_pub, "
	    "ak_pub = excluded.ak_pub, state = 'pending', secret_hash = "
	    "excluded.secret_hash, ak_cert = '', updated = excluded.updated "
	    "WHERE devices.state <> 'revoked'",
	    "challenge", err, errlen, 5, d->id, d->ek_pub, d->ak_pub,
	    d->secret_hash, now);
	return n < 0 ? -1 : n == 0 ? VFY_NO : 0;
}

static void
device_row(PGresult *r, int i, struct vfy_device *d, bool full)
{
	memset(d, 0, sizeof(*d));
	vpg_gets(r, i, 0, d->id, sizeof(d->id));
	vpg_gets(r, i, 1, d->state, sizeof(d->state));
	d->updated = vpg_geti(r, i, 2);
	d->revoked_at = vpg_geti(r, i, 3);
	vpg_gets(r, i, 4, d->revoked_by, sizeof(d->revoked_by));
	if (full) {
		vpg_gets(r, i, 5, d->ek_pub, sizeof(d->ek_pub));
		vpg_gets(r, i, 6, d->ak_pub, sizeof(d->ak_pub));
		vpg_gets(r, i, 7, d->secret_hash, sizeof(d->secret_hash));
		vpg_gets(r, i, 8, d->ak_cert, sizeof(d->ak_cert));
	}
}

static int
pg_device_get(void *h, const char *id, struct vfy_device *d, char *err,
              size_t errlen)
{
	struct pg *p = h;
	PGresult  *r;
	int        n;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(
	    p,
	    "SELECT id, state, updated, coalesce(revoked_at, 0), "
	    "coalesce(revoked_by, ''), ek_pub, ak_pub, "
	    "coalesce(secret_hash, ''), coalesce(ak_cert, '') FROM devices "
	    "WHERE id = $1",
	    "select device", err, errlen, 1, id);
	if (r == NULL) {
		return -1;
	}
	n = PQntuples(r);
	if (n > 0) {
		device_row(r, 0, d, true);
	}
	PQclear(r);
	return n > 0 ? 1 : 0;
}

static int
pg_activate(void *h, const char *id, const char *secret_hash,
            const char *ak_cert, char *err, size_t errlen)
{
	struct pg *p = h;
	char       now[24];
	int        n;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	/* the racers queue on the row lock; after the first commits, the
	 * others' WHERE no longer matches (READ COMMITTED re-checks it) */
	n = vpg_cmd(p,
	            "UPDATE devices SET state = 'active', secret_hash = '', "
	            "ak_cert = $1, updated = $2 WHERE id = $3 AND state = "
	            "'pending' AND secret_hash = $4",
	            "activate", err, errlen, 4, ak_cert, now, id, secret_hash);
	return n < 0 ? -1 : n == 0 ? VFY_NO : 0;
}

/* A report that only records a sighting commits without waiting for the
 * WAL flush: a server crash may lose the last fraction of a second of
 * sightings (never corrupts; the devices' next reports restore them, and
 * a clone is still caught then, the rule being symmetric). A report that
 * raises an alert switches back to a synchronous commit. */
static const char REPORT_BEGIN[] = "BEGIN ISOLATION LEVEL SERIALIZABLE; "
                                   "SET LOCAL synchronous_commit = off";

struct report_arg {
	const char         *ek_fp, *device, *vm;
	struct vfy_verdict *v;
};

static int
report_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	struct report_arg  *a = arg;
	struct vfy_verdict *v = a->v;
	const char         *lo, *hi;
	char                now[24];
	PGresult           *r;

	memset(v, 0, sizeof(*v));
	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	r = vpg_q(
	    p,
	    "SELECT device FROM bindings WHERE ek_fp = $1 AND device <> $2 "
	    "AND state = 'active' ORDER BY first_seen, device LIMIT 1",
	    "select binding", err, errlen, 2, a->ek_fp, a->device);
	if (r == NULL) {
		return -1;
	}
	if (PQntuples(r) > 0) {
		vpg_gets(r, 0, 0, v->other, sizeof(v->other));
		v->clone = true;
	}
	PQclear(r);
	if (vpg_cmd(p,
	            "INSERT INTO bindings(ek_fp, device, vm, first_seen, "
	            "last_seen, state) VALUES($1, $2, $3, $4, $4, 'active') ON "
	            "CONFLICT(ek_fp, device) DO UPDATE SET last_seen = "
	            "excluded.last_seen, vm = excluded.vm",
	            "insert binding", err, errlen, 4, a->ek_fp, a->device,
	            a->vm, now) < 0) {
		return -1;
	}
	if (!v->clone) {
		return 0;
	}
	if (vpg_cmd(p, "SET LOCAL synchronous_commit = on",
	            "synchronous commit", err, errlen, 0) < 0) {
		return -1;
	}
	vfy_pair(v->other, a->device, &lo, &hi);
	r = vpg_q(
	    p,
	    "INSERT INTO alerts(ek_fp, first_device, second_device, vm, at, "
	    "dev_lo, dev_hi) VALUES($1, $2, $3, $4, $5, $6, $7) ON "
	    "CONFLICT(ek_fp, dev_lo, dev_hi) DO NOTHING RETURNING id",
	    "insert alert", err, errlen, 7, a->ek_fp, v->other, a->device,
	    a->vm, now, lo, hi);
	if (r == NULL) {
		return -1;
	}
	if (PQntuples(r) == 1) {
		v->alert_new = true;
		v->alert_id = vpg_geti(r, 0, 0);
		PQclear(r);
		return 0;
	}
	PQclear(r);
	r = vpg_q(p,
	          "SELECT id FROM alerts WHERE ek_fp = $1 AND dev_lo = $2 AND "
	          "dev_hi = $3",
	          "select alert", err, errlen, 3, a->ek_fp, lo, hi);
	if (r == NULL) {
		return -1;
	}
	if (PQntuples(r) == 1) {
		v->alert_id = vpg_geti(r, 0, 0);
	}
	PQclear(r);
	return 0;
}

static int
pg_report(void *h, const char *ek_fp, const char *device, const char *vm,
          struct vfy_verdict *v, char *err, size_t errlen)
{
	struct report_arg a = {ek_fp, device, vm, v};

	memset(v, 0, sizeof(*v));
	return vpg_tx(h, REPORT_BEGIN, report_body, &a, err, errlen);
}

struct move_arg {
	const char *ek_fp, *to, *by;
};

static int
move_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	struct move_arg *a = arg;
	char             vm[UUID_LEN], now[24];
	PGresult        *r;
	bool             ok;

	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	r = vpg_q(p, "SELECT state = 'active' FROM devices WHERE id = $1",
	          "select device", err, errlen, 1, a->to);
	if (r == NULL) {
		return -1;
	}
	ok = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!ok) {
		return VFY_NO_DEV;
	}
	r = vpg_q(
	    p,
	    "SELECT vm FROM bindings WHERE ek_fp = $1 AND state = 'active' "
	    "ORDER BY first_seen, device LIMIT 1",
	    "select binding", err, errlen, 1, a->ek_fp);
	if (r == NULL) {
		return -1;
	}
	ok = PQntuples(r) == 1;
	if (ok) {
		vpg_gets(r, 0, 0, vm, sizeof(vm));
	}
	PQclear(r);
	if (!ok) {
		return VFY_NO;
	}
	if (vpg_cmd(
	        p,
	        "INSERT INTO moves(ek_fp, from_device, to_device, vm, by, at) "
	        "SELECT ek_fp, device, $2, vm, $3, $4 FROM bindings WHERE "
	        "ek_fp = $1 AND device <> $2 AND state = 'active' ORDER BY "
	        "first_seen, device",
	        "record move", err, errlen, 4, a->ek_fp, a->to, a->by,
	        now) < 0 ||
	    vpg_cmd(
	        p,
	        "DELETE FROM bindings WHERE ek_fp = $1 AND device <> $2 AND "
	        "state = 'active'",
	        "delete bindings", err, errlen, 2, a->ek_fp, a->to) < 0 ||
	    vpg_cmd(p,
	            "INSERT INTO bindings(ek_fp, device, vm, first_seen, "
	            "last_seen, state) VALUES($1, $2, $3, $4, $4, 'active') ON "
	            "CONFLICT(ek_fp, device) DO NOTHING",
	            "insert binding", err, errlen, 4, a->ek_fp, a->to, vm,
	            now) < 0) {
		return -1;
	}
	return 0;
}

static int
pg_move(void *h, const char *ek_fp, const char *to, const char *by, char *err,
        size_t errlen)
{
	struct move_arg a = {ek_fp, to, by};

	return vpg_tx(h, vpg_serializable, move_body, &a, err, errlen);
}

struct revoke_arg {
	const char *id, *by;
};

static int
revoke_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	struct revoke_arg *a = arg;
	char               now[24];
	PGresult          *r;
	int                n;

	vpg_i64s((int64_t) time(NULL), now, sizeof(now));
	r = vpg_q(p, "SELECT 1 FROM devices WHERE id = $1", "select device",
	          err, errlen, 1, a->id);
	if (r == NULL) {
		return -1;
	}
	n = PQntuples(r);
	PQclear(r);
	if (n == 0) {
		return VFY_NO;
	}
	if (vpg_cmd(
	        p,
	        "UPDATE devices SET state = 'revoked', secret_hash = '', "
	        "revoked_at = $2, revoked_by = $3, updated = $2 WHERE id = $1 "
	        "AND state <> 'revoked'",
	        "revoke device", err, errlen, 3, a->id, now, a->by) < 0 ||
	    vpg_cmd(p,
	            "UPDATE bindings SET state = 'revoked' WHERE device = $1",
	            "revoke bindings", err, errlen, 1, a->id) < 0) {
		return -1;
	}
	return 0;
}

static int
pg_revoke(void *h, const char *id, const char *by, char *err, size_t errlen)
{
	struct revoke_arg a = {id, by};

	return vpg_tx(h, vpg_serializable, revoke_body, &a, err, errlen);
}

static const char alert_cols[] =
    "SELECT id, ek_fp, first_device, second_device, vm, at, "
    "coalesce(acked_at, 0), coalesce(acked_by, '') FROM alerts ";

static void
alert_row(PGresult *r, int i, struct vfy_alert *a)
{
	memset(a, 0, sizeof(*a));
	a->id = vpg_geti(r, i, 0);
	vpg_gets(r, i, 1, a->ek_fp, sizeof(a->ek_fp));
	vpg_gets(r, i, 2, a->first, sizeof(a->first));
	vpg_gets(r, i, 3, a->second, sizeof(a->second));
	vpg_gets(r, i, 4, a->vm, sizeof(a->vm));
	a->at = vpg_geti(r, i, 5);
	a->acked_at = vpg_geti(r, i, 6);
	vpg_gets(r, i, 7, a->acked_by, sizeof(a->acked_by));
}

struct ack_arg {
	int64_t           id;
	const char       *by;
	struct vfy_alert *a;
};

static int
ack_body(struct pg *p, void *arg, char *err, size_t errlen)
{
	struct ack_arg *a = arg;
	char            id[24], now[24], sql[256];
	PGresult       *r;
	int             n;

	vpg_i64s(a->id, id, sizeof(id));
	snprintf(sql, sizeof(sql), "%sWHERE id = $1", alert_cols);
	if ((r = vpg_q(p, sql, "select alert", err, errlen, 1, id)) == NULL) {
		return -1;
	}
	n = PQntuples(r);
	if (n == 1) {
		alert_row(r, 0, a->a);
	}
	PQclear(r);
	if (n == 0) {
		return VFY_NO;
	}
	if (a->a->acked_at != 0) {
		return VFY_NO_DEV;
	}
	a->a->acked_at = (int64_t) time(NULL);
	snprintf(a->a->acked_by, sizeof(a->a->acked_by), "%s", a->by);
	vpg_i64s(a->a->acked_at, now, sizeof(now));
	return vpg_cmd(
	           p,
	           "UPDATE alerts SET acked_at = $2, acked_by = $3 WHERE id = "
	           "$1",
	           "acknowledge alert", err, errlen, 3, id, now, a->by) < 0
	           ? -1
	           : 0;
}

static int
pg_ack(void *h, int64_t id, const char *by, struct vfy_alert *al, char *err,
       size_t errlen)
{
	struct ack_arg a = {id, by, al};

	return vpg_tx(h, vpg_serializable, ack_body, &a, err, errlen);
}

static int
pg_devices(void *h, const struct vfy_filter                        *f,
           void (*fn)(void *arg, const struct vfy_device *d), void *arg,
           char *err, size_t errlen)
{
	struct pg        *p = h;
	struct vfy_device d;
	PGresult         *r;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(
	    p,
	    "SELECT id, state, updated, coalesce(revoked_at, 0), "
	    "coalesce(revoked_by, '') FROM devices WHERE ($1::text IS NULL "
	    "OR id = $1) AND ($2::text IS NULL OR state = $2) ORDER BY id",
	    "select devices", err, errlen, 2, vpg_nz(f->device),
	    vpg_nz(f->state));
	if (r == NULL) {
		return -1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		device_row(r, i, &d, false);
		fn(arg, &d);
	}
	PQclear(r);
	return 0;
}

static int
pg_bindings(void *h, const struct vfy_filter                         *f,
            void (*fn)(void *arg, const struct vfy_binding *b), void *arg,
            char *err, size_t errlen)
{
	struct pg         *p = h;
	struct vfy_binding b;
	PGresult          *r;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(
	    p,
	    "SELECT ek_fp, device, vm, state, first_seen, last_seen FROM "
	    "bindings WHERE ($1::text IS NULL OR device = $1) AND ($2::text "
	    "IS NULL OR ek_fp = $2) AND ($3::text IS NULL OR state = $3) "
	    "ORDER BY first_seen, ek_fp, device",
	    "select bindings", err, errlen, 3, vpg_nz(f->device),
	    vpg_nz(f->ek_fp), vpg_nz(f->state));
	if (r == NULL) {
		return -1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		memset(&b, 0, sizeof(b));
		vpg_gets(r, i, 0, b.ek_fp, sizeof(b.ek_fp));
		vpg_gets(r, i, 1, b.device, sizeof(b.device));
		vpg_gets(r, i, 2, b.vm, sizeof(b.vm));
		vpg_gets(r, i, 3, b.state, sizeof(b.state));
		b.first_seen = vpg_geti(r, i, 4);
		b.last_seen = vpg_geti(r, i, 5);
		fn(arg, &b);
	}
	PQclear(r);
	return 0;
}

static int
pg_alerts(void *h, void (*fn)(void *arg, const struct vfy_alert *a), void *arg,
          char *err, size_t errlen)
{
	struct pg       *p = h;
	struct vfy_alert a;
	PGresult        *r;
	char             sql[256];

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	snprintf(sql, sizeof(sql), "%sORDER BY id", alert_cols);
	if ((r = vpg_q(p, sql, "select alerts", err, errlen, 0)) == NULL) {
		return -1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		alert_row(r, i, &a);
		fn(arg, &a);
	}
	PQclear(r);
	return 0;
}

static int
pg_moves(void *h, const struct vfy_filter                      *f,
         void (*fn)(void *arg, const struct vfy_move *m), void *arg, char *err,
         size_t errlen)
{
	struct pg      *p = h;
	struct vfy_move m;
	PGresult       *r;

	if (vpg_ensure(p, err, errlen) < 0) {
		return -1;
	}
	r = vpg_q(p,
	          "SELECT ek_fp, from_device, to_device, vm, by, at FROM moves "
	          "WHERE ($1::text IS NULL OR ek_fp = $1) ORDER BY id",
	          "select moves", err, errlen, 1, vpg_nz(f->ek_fp));
	if (r == NULL) {
		return -1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		memset(&m, 0, sizeof(m));
		vpg_gets(r, i, 0, m.ek_fp, sizeof(m.ek_fp));
		vpg_gets(r, i, 1, m.from, sizeof(m.from));
		vpg_gets(r, i, 2, m.to, sizeof(m.to));
		vpg_gets(r, i, 3, m.vm, sizeof(m.vm));
		vpg_gets(r, i, 4, m.by, sizeof(m.by));
		m.at = vpg_geti(r, i, 5);
		fn(arg, &m);
	}
	PQclear(r);
	return 0;
}

const struct registry_ops vfy_registry_pg = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .challenge = pg_challenge,
    .device_get = pg_device_get,
    .activate = pg_activate,
    .report = pg_report,
    .move = pg_move,
    .revoke = pg_revoke,
    .ack = pg_ack,
    .devices = pg_devices,
    .bindings = pg_bindings,
    .alerts = pg_alerts,
    .moves = pg_moves,
    .schema_version = pg_schema_version,
    .hw_ek_put = vpg_hw_ek_put,
    .hw_ek_get = vpg_hw_ek_get,
    .nonce_add = vpg_nonce_add,
    .nonce_take = vpg_nonce_take,
    .ref_put = vpg_ref_put,
    .ref_get = vpg_ref_get,
};
