/*
 * registry.c: picks the registry backend from the DSN and hands out the
 * one struct registry_ops it implements (registry_sqlite.c, registry_pg.c).
 */
#include "verify.h"

#include <stdio.h>
#include <string.h>

int
vfy_registry_open(struct registry *r, const char *dsn, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (strncmp(dsn, "postgresql://", 13) == 0 ||
	    strncmp(dsn, "postgres://", 11) == 0) {
		r->ops = &vfy_registry_pg;
	} else if (strncmp(dsn, "pg:", 3) == 0) {
		r->ops = &vfy_registry_pg;
		dsn += 3; /* a libpq keyword DSN: "host=/run/x dbname=y" */
	} else if (strncmp(dsn, "sqlite:", 7) == 0) {
		r->ops = &vfy_registry_sqlite;
		dsn += 7;
	} else if (strstr(dsn, "://") != NULL) {
		snprintf(err, errlen,
		         "registry %.200s: unknown scheme (sqlite:PATH, PATH, "
		         "postgresql://..., pg:KEYWORD=VALUE...)",
		         dsn);
		return -1;
	} else {
		r->ops = &vfy_registry_sqlite;
	}
	if (r->ops->open(&r->h, dsn, err, errlen) < 0) {
		r->h = NULL;
		return -1;
	}
	return 0;
}

void
vfy_registry_close(struct registry *r)
{
	if (r->ops != NULL && r->h != NULL) {
		r->ops->close(r->h);
	}
	r->h = NULL;
}

void
vfy_pair(const char *a, const char *b, const char **lo, const char **hi)
{
	if (strcmp(a, b) <= 0) {
		*lo = a;
		*hi = b;
	} else {
		*lo = b;
		*hi = a;
	}
}
