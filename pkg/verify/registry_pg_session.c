/*
 * registry_pg_session.c: one verifier's PostgreSQL session: the
 * connection (re-established after a loss), statements prepared once per
 * connection, transactions retried after serialization failures and
 * deadlocks (SQLSTATE 40001, 40P01), errors on one line naming the
 * database.
 */
#include "registry_pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_RETRIES 50 /* serialization failures before giving up */

void
vpg_forget_statements(struct pg *p)
{
	for (int i = 0; i < PG_STMTS; i++) {
		free(p->stmt[i]);
		p->stmt[i] = NULL;
	}
}

const char vpg_serializable[] = "BEGIN ISOLATION LEVEL SERIALIZABLE";

static void
chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) {
		s[--n] = '\0';
	}
}

/* err = "registry LABEL: WHAT: MSG" on one line (libpq's messages span
 * several); a connection that broke under the statement says so. */
int
vpg_fail(struct pg *p, const char *what, const char *msg, char *err,
         size_t errlen)
{
	snprintf(err, errlen, "registry %s: %s%s: %s", p->label,
	         PQstatus(p->c) == CONNECTION_BAD &&
	                 strcmp(what, "connection lost") != 0 &&
	                 strcmp(what, "connect") != 0
	             ? "connection lost during "
	             : "",
	         what, msg != NULL && msg[0] != '\0' ? msg : "failed");
	chomp(err);
	for (char *c = err; *c != '\0'; c++) {
		if (*c == '\n' || *c == '\t') {
			*c = ' ';
		}
	}
	return -1;
}

/* the database, server and port a connection is for, never a password */
void
vpg_set_label(struct pg *p)
{
	const char *h = PQhost(p->c), *port = PQport(p->c), *db = PQdb(p->c);

	snprintf(p->label, sizeof(p->label), "postgresql %s on %s:%s",
	         db && db[0] ? db : "?", h && h[0] ? h : "localhost",
	         port && port[0] ? port : "5432");
}

/* A live connection, re-established when the last one was lost. */
int
vpg_ensure(struct pg *p, char *err, size_t errlen)
{
	if (PQstatus(p->c) == CONNECTION_OK) {
		return 0;
	}
	PQreset(p->c);
	vpg_forget_statements(p); /* they went with the old session */
	if (PQstatus(p->c) != CONNECTION_OK) {
		return vpg_fail(p, "connection lost", PQerrorMessage(p->c), err,
		                errlen);
	}
	return 0;
}

/* sql with parameters v through its prepared statement, prepared now on
 * first use (without a free slot: unprepared). */
static PGresult *
exec_prepared(struct pg *p, const char *sql, int n, const char *const *v)
{
	char      name[16];
	PGresult *r;
	int       i, free_slot = -1;

	for (i = 0; i < PG_STMTS; i++) {
		if (p->stmt[i] != NULL && strcmp(p->stmt[i], sql) == 0) {
			break;
		}
		if (p->stmt[i] == NULL && free_slot < 0) {
			free_slot = i;
		}
	}
	if (i == PG_STMTS) {
		if (free_slot < 0) {
			return PQexecParams(p->c, sql, n, NULL, v, NULL, NULL,
			                    0);
		}
		i = free_slot;
		snprintf(name, sizeof(name), "vfy%d", i);
		r = PQprepare(p->c, name, sql, n, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			return r; /* its error is the statement's */
		}
		PQclear(r);
		if ((p->stmt[i] = strdup(sql)) == NULL) {
			return PQexecParams(p->c, sql, n, NULL, v, NULL, NULL,
			                    0);
		}
	}
	snprintf(name, sizeof(name), "vfy%d", i);
	return PQexecPrepared(p->c, name, n, v, NULL, NULL, 0);
}

/* Run sql with text parameters (NULL: SQL NULL). The result when it has
 * the status wanted, else NULL with err and p->sqlstate set. */
PGresult *
vpg_q(struct pg *p, const char *sql, const char *what, char *err, size_t errlen,
      int n, ...)
{
	const char    *v[PG_MAXPARAMS];
	va_list        ap;
	PGresult      *r;
	ExecStatusType st;

	va_start(ap, n);
	for (int i = 0; i < n && i < PG_MAXPARAMS; i++) {
		v[i] = va_arg(ap, const char *);
	}
	va_end(ap);
	r = n > 0 ? exec_prepared(p, sql, n, v) : PQexec(p->c, sql);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		return r;
	}
	{
		const char *s =
		    r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

		snprintf(p->sqlstate, sizeof(p->sqlstate), "%s", s ? s : "");
	}
	vpg_fail(p, what,
	         r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
	                                         : PQerrorMessage(p->c),
	         err, errlen);
	PQclear(r);
	return NULL;
}

/* q for statements whose rows are not needed: rows affected or -1 */
int
vpg_cmd(struct pg *p, const char *sql, const char *what, char *err,
        size_t errlen, int n, ...)
{
	const char *v[PG_MAXPARAMS] = {NULL};
	va_list     ap;
	PGresult   *r;
	int         rows;

	va_start(ap, n);
	for (int i = 0; i < n && i < PG_MAXPARAMS; i++) {
		v[i] = va_arg(ap, const char *);
	}
	va_end(ap);
	r = vpg_q(p, sql, what, err, errlen, n, v[0], v[1], v[2], v[3], v[4],
	          v[5], v[6], v[7]);
	if (r == NULL) {
		return -1;
	}
	rows = atoi(PQcmdTuples(r));
	PQclear(r);
	return rows;
}

static bool
retryable(const struct pg *p)
{
	return strcmp(p->sqlstate, "40001") == 0 ||
	       strcmp(p->sqlstate, "40P01") == 0;
}

/* body(p, arg, err, errlen) inside BEGIN (begin_sql) ... COMMIT, run again
 * after a serialization failure or deadlock; its result (>= 0) or -1. */
int
vpg_tx(struct pg *p, const char *begin_sql,
       int (*body)(struct pg *p, void *arg, char *err, size_t errlen),
       void *arg, char *err, size_t errlen)
{
	int ret = -1;

	for (int attempt = 0; attempt < PG_RETRIES; attempt++) {
		if (vpg_ensure(p, err, errlen) < 0) {
			return -1;
		}
		p->sqlstate[0] = '\0';
		if (vpg_cmd(p, begin_sql, "begin", err, errlen, 0) < 0) {
			return -1;
		}
		ret = body(p, arg, err, errlen);
		if (ret >= 0 &&
		    vpg_cmd(p, "COMMIT", "commit", err, errlen, 0) >= 0) {
			return ret;
		}
		if (PQstatus(p->c) == CONNECTION_OK &&
		    PQtransactionStatus(p->c) != PQTRANS_IDLE) {
			PQclear(PQexec(p->c, "ROLLBACK"));
		}
		if (!retryable(p)) {
			return -1;
		}
		/* back off a little, more with every attempt, jittered so
		 * that the racers do not collide again in lock step */
		usleep((useconds_t) (200 +
		                     rand_r(&p->seed) % (500 * (attempt + 1))));
	}
	snprintf(err + strlen(err), errlen - strlen(err),
	         " (gave up after %d serialization retries)", PG_RETRIES);
	return -1;
}

void
vpg_i64s(int64_t v, char *b, size_t len)
{
	snprintf(b, len, "%lld", (long long) v);
}

int64_t
vpg_geti(PGresult *r, int row, int c)
{
	return strtoll(PQgetvalue(r, row, c), NULL, 10);
}

void
vpg_gets(PGresult *r, int row, int c, char *dst, size_t len)
{
	snprintf(dst, len, "%s", PQgetvalue(r, row, c));
}

const char *
vpg_nz(const char *f)
{
	return f != NULL && f[0] != '\0' ? f : NULL;
}
