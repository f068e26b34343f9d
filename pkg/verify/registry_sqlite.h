/*
 * registry_sqlite.h: inside the SQLite registry backend (registry_sqlite.c:
 * the file, migrations and the registry's decisions;
 * registry_sqlite_attest.c: the attestation tables). Not for other files.
 */
#ifndef VTPM_REGISTRY_SQLITE_H
#define VTPM_REGISTRY_SQLITE_H

#include "verify.h"

#include <sqlite3.h>

struct sq {
	sqlite3 *db;
	char     path[4096];
};

/* err = "registry sqlite:PATH: WHAT: sqlite's message"; -1 */
int vsq_dberr(struct sq *s, const char *what, char *err, size_t errlen);
/* sql prepared, its parameters bound by types: 's' text (NULL: NULL), 'i'
 * int64. NULL on error (err set). */
sqlite3_stmt *vsq_prep(struct sq *s, const char *sql, const char *types,
                       char *err, size_t errlen, ...);
/* step a statement without rows, finalize it: rows changed or -1 */
int vsq_run(struct sq *s, sqlite3_stmt *st, const char *what, char *err,
            size_t errlen);
/* column i as text into dst ("" for NULL) */
void vsq_col(sqlite3_stmt *st, int i, char *dst, size_t len);
int  vsq_exec(struct sq *s, const char *sql, const char *what, char *err,
              size_t errlen);
/* BEGIN IMMEDIATE: the write lock before the first read */
int vsq_begin(struct sq *s, char *err, size_t errlen);
/* COMMIT when ret >= 0, else ROLLBACK; ret (or -1: the commit failed) */
int vsq_finish(struct sq *s, int ret, char *err, size_t errlen);

/* registry_sqlite_attest.c: the ops of schema 3 (see struct registry_ops) */
int vsq_hw_ek_put(void *h, const char *device, const char *ek_cert,
                  const char *trust, char *err, size_t errlen);
int vsq_hw_ek_get(void *h, const char *device, char *ek_cert, size_t certlen,
                  char *trust, size_t trustlen, char *err, size_t errlen);
int vsq_nonce_add(void *h, const char *device, const char *nonce, char *err,
                  size_t errlen);
int vsq_nonce_take(void *h, const char *device, const char *nonce, char *err,
                   size_t errlen);
int vsq_ref_put(void *h, const char *device, uint32_t mask,
                const uint8_t values[16][32], char *err, size_t errlen);
int vsq_ref_get(void *h, const char *device, uint32_t *mask,
                uint8_t values[16][32], char *err, size_t errlen);

#endif
