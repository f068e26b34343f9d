/* msg.c: whole messages, {"type": NAME, "version": 1, ...fields}. */
#include "msg.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Offset of the first NUL in the JSON text, raw or written as the escape
 * \u0000 inside a string (keys included), or -1. cJSON hands strings out
 * as C strings cut at the NUL, so "AttestRequest\u0000y" would read as
 * "AttestRequest": a strict decoder refuses the message instead. */
static long
json_nul_at(const unsigned char *p, size_t len)
{
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0') {
			return (long) i;
		}
		if (!in_string) {
			in_string = p[i] == '"';
		} else if (p[i] == '"') {
			in_string = 0;
		} else if (p[i] == '\\' && i + 1 < len) {
			if (p[i + 1] == 'u' && i + 5 < len &&
			    memcmp(p + i + 2, "0000", 4) == 0) {
				return (long) i;
			}
			i++; /* the escaped character is not a quote */
		}
	}
	return -1;
}

cJSON *
msg_json_parse(const void *buf, size_t len, char *err, size_t errlen)
{
	cJSON *root;
	long   at;

	if ((at = json_nul_at(buf, len)) >= 0) {
		snprintf(err, errlen,
		         "NUL character at byte %ld (not allowed "
		         "in any string)",
		         at);
		return NULL;
	}
	root = cJSON_ParseWithLength(buf, len);
	if (root == NULL) {
		snprintf(err, errlen, "malformed JSON");
	}
	return root;
}

int
msg_decode(const void *buf, size_t len, enum msg_type expect,
           enum msg_type *type, void *out, char *err, size_t errlen)
{
	const struct schema *s = NULL;
	cJSON               *root, *t, *v;
	int                  rc = -1;

	if (len > MSG_MAX) {
		snprintf(err, errlen, "message of %zu bytes over the %d limit",
		         len, MSG_MAX);
		return -1;
	}
	if ((root = msg_json_parse(buf, len, err, errlen)) == NULL) {
		return -1;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "message is not a JSON object");
		goto out;
	}
	t = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!cJSON_IsString(t)) {
		snprintf(err, errlen, "missing or non-string \"type\"");
		goto out;
	}
	s = msg_schema_by_name(t->valuestring);
	if (s == NULL) {
		snprintf(err, errlen, "unknown message type \"%.64s\"",
		         t->valuestring);
		goto out;
	}
	if (expect != MSG_NONE && s->type != expect) {
		snprintf(err, errlen, "unexpected message type %s (want %s)",
		         s->name, msg_type_name(expect));
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(v) || v->valuedouble != MSG_VERSION) {
		snprintf(err, errlen, "%s: unsupported or missing version",
		         s->name);
		goto out;
	}
	/* the envelope fields are not part of the schema */
	cJSON_DeleteItemFromObjectCaseSensitive(root, "type");
	cJSON_DeleteItemFromObjectCaseSensitive(root, "version");
	if (schema_decode(s, root, out, err, errlen) < 0) {
		goto out;
	}
	*type = s->type;
	rc = 0;
out:
	/* secrets in the parse tree are wiped before it is freed */
	schema_wipe_json(s, root);
	cJSON_Delete(root);
	return rc;
}

static int
schema_has_secret(const struct schema *s)
{
	for (size_t i = 0; i < s->nfields; i++) {
		if ((s->fields[i].flags & FF_SECRET) ||
		    (s->fields[i].kind == FK_OBJECT &&
		     schema_has_secret(s->fields[i].sub))) {
			return 1;
		}
	}
	return 0;
}

char *
msg_encode(enum msg_type type, const void *in)
{
	const struct schema *s = msg_schema(type);
	cJSON               *root, *body, *c;
	char                *out = NULL;

	if (s == NULL) {
		return NULL;
	}
	root = cJSON_CreateObject();
	body = schema_encode(s, in);
	if (root == NULL || body == NULL ||
	    cJSON_AddStringToObject(root, "type", s->name) == NULL ||
	    cJSON_AddNumberToObject(root, "version", MSG_VERSION) == NULL) {
		goto out;
	}
	/* type and version first, then the fields in table order */
	while ((c = body->child) != NULL) {
		cJSON_DetachItemViaPointer(body, c);
		cJSON_AddItemToObject(root, c->string, c);
	}
	if (schema_has_secret(s)) {
		/* cJSON's growing print buffer would leave unwiped copies of
		 * the secret in freed memory: print into one fixed buffer */
		out = malloc(MSG_MAX);
		if (out != NULL &&
		    !cJSON_PrintPreallocated(root, out, MSG_MAX, 0)) {
			msg_free_wipe(out);
			out = NULL;
		}
	} else {
		out = cJSON_PrintUnformatted(root);
	}
out:
	schema_wipe_json(s, root);
	schema_wipe_json(s, body);
	cJSON_Delete(root);
	cJSON_Delete(body);
	return out;
}

void
msg_free_wipe(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strnlen(s, MSG_MAX));
		free(s);
	}
}
