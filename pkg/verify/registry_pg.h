/*
 * registry_pg.h: inside the PostgreSQL registry backend (registry_pg.c:
 * the session, migrations and the registry's decisions;
 * registry_pg_attest.c: the attestation tables). Not for other files.
 */
#ifndef VTPM_REGISTRY_PG_H
#define VTPM_REGISTRY_PG_H

#include "verify.h"

#include <libpq-fe.h>

#define PG_MAXPARAMS 8

#define PG_STMTS 32 /* statements prepared per connection */

struct pg {
	PGconn *c;
	char    label[512];  /* "postgresql DB on HOST:PORT" for errors */
	char    sqlstate[6]; /* of the last failed statement */
	/* the statements with parameters prepared on this connection (their
	 * text; statement i is named "vfy<i>"): parsed and planned once per
	 * connection, not once per report */
	char    *stmt[PG_STMTS];
	unsigned seed; /* back-off jitter, distinct per process */
};

/* registry_pg_session.c */
/* "BEGIN ISOLATION LEVEL SERIALIZABLE" */
extern const char vpg_serializable[];

void vpg_forget_statements(struct pg *p); /* before PQreset/PQfinish */
/* p->label: the database, server and port, never a password */
void vpg_set_label(struct pg *p);
/* err = "registry LABEL: WHAT: MSG" on one line; -1 */
int vpg_fail(struct pg *p, const char *what, const char *msg, char *err,
             size_t errlen);
/* A live connection, re-established when the last one was lost. */
int vpg_ensure(struct pg *p, char *err, size_t errlen);
/* sql with n text parameters (NULL: SQL NULL) through a prepared
 * statement: the result, or NULL with err and p->sqlstate set. */
PGresult *vpg_q(struct pg *p, const char *sql, const char *what, char *err,
                size_t errlen, int n, ...);
/* vpg_q for statements whose rows are not needed: rows affected or -1 */
int vpg_cmd(struct pg *p, const char *sql, const char *what, char *err,
            size_t errlen, int n, ...);
/* body in BEGIN (begin_sql) ... COMMIT, retried after serialization
 * failures and deadlocks: its result (>= 0) or -1. */
int         vpg_tx(struct pg *p, const char *begin_sql,
                   int (*body)(struct pg *p, void *arg, char *err, size_t errlen),
                   void *arg, char *err, size_t errlen);
void        vpg_i64s(int64_t v, char *b, size_t len);
int64_t     vpg_geti(PGresult *r, int row, int c);
void        vpg_gets(PGresult *r, int row, int c, char *dst, size_t len);
const char *vpg_nz(const char *f); /* NULL for NULL or "" */

/* registry_pg_attest.c: the ops of schema 3 (see struct registry_ops) */
int vpg_hw_ek_put(void *h, const char *device, const char *ek_cert,
                  const char *trust, char *err, size_t errlen);
int vpg_hw_ek_get(void *h, const char *device, char *ek_cert, size_t certlen,
                  char *trust, size_t trustlen, char *err, size_t errlen);
int vpg_nonce_add(void *h, const char *device, const char *nonce, char *err,
                  size_t errlen);
int vpg_nonce_take(void *h, const char *device, const char *nonce, char *err,
                   size_t errlen);
int vpg_ref_put(void *h, const char *device, uint32_t mask,
                const uint8_t values[16][32], char *err, size_t errlen);
int vpg_ref_get(void *h, const char *device, uint32_t *mask,
                uint8_t values[16][32], char *err, size_t errlen);

#endif
