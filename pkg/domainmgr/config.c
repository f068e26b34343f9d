/*
 * config.c: the deployment config, as the remote controller delivers it.
 *
 *   {"apps": [{"uuid": UUID, "name": S, "activate": B,
 *              "vtpm": {"enabled": B, "version": "2.0",
 *                       "model": "tis"|"crb",
 *                       "mode": "persistent"|"ephemeral"}}, ...]}
 *
 * (a bare array of apps is accepted too). Each entry is decoded by the
 * strict schema engine of pubsub/ (the vtpm object reuses the schema that
 * DomainStatus carries), then checked for what a schema cannot say: TPM 1.2
 * is not supported, crb needs 2.0, a UUID appears once. A bad entry is
 * rejected on its own; only a document that is not a config at all is
 * refused as a whole.
 */
#include "domainmgr.h"

#include "common.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One entry as the schema sees it. */
struct dmcfg_entry {
	char             uuid[UUID_LEN];
	char             name[NAME_LEN];
	bool             activate;
	struct vtpm_spec vtpm;
};

/* The vtpm sub-schema of DomainStatus: one definition of the vtpm object
 * for the wire and for the config. */
static const struct schema *
vtpm_schema(void)
{
	const struct schema *ds = msg_schema(MSG_DOMAIN_STATUS);

	for (size_t i = 0; ds != NULL && i < ds->nfields; i++) {
		if (strcmp(ds->fields[i].name, "vtpm") == 0) {
			return ds->fields[i].sub;
		}
	}
	return NULL;
}

static int
entry_schema(struct schema *s, struct field *f)
{
	const struct schema *vs = vtpm_schema();

	if (vs == NULL) {
		return -1;
	}
	memset(f, 0, 4 * sizeof(*f));
	f[0] = (struct field){.name = "uuid",
	                      .kind = FK_UUID,
	                      .offset = offsetof(struct dmcfg_entry, uuid),
	                      .size = UUID_LEN,
	                      .flags = FF_REQUIRED};
	f[1] = (struct field){.name = "name",
	                      .kind = FK_STRING,
	                      .offset = offsetof(struct dmcfg_entry, name),
	                      .size = NAME_LEN};
	f[2] = (struct field){.name = "activate",
	                      .kind = FK_BOOL,
	                      .offset = offsetof(struct dmcfg_entry, activate),
	                      .size = sizeof(bool),
	                      .def = 1};
	f[3] = (struct field){.name = "vtpm",
	                      .kind = FK_OBJECT,
	                      .offset = offsetof(struct dmcfg_entry, vtpm),
	                      .size = sizeof(struct vtpm_spec),
	                      .sub = vs};
	*s = (struct schema){.name = "app",
	                     .type = MSG_NONE,
	                     .size = sizeof(struct dmcfg_entry),
	                     .fields = f,
	                     .nfields = 4};
	return 0;
}

/* "app[3] (uuid U, name "N")": how every error names an entry. The raw
 * JSON is used so that even an entry whose uuid is bad is named. */
static void
entry_label(char *dst, size_t len, int index, const cJSON *obj)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, "uuid");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, "name");
	bool         hu = cJSON_IsString(u) && u->valuestring != NULL;
	bool         hn = cJSON_IsString(n) && n->valuestring != NULL;

	if (hu && hn) {
		snprintf(dst, len, "app[%d] (uuid %.36s, name \"%.64s\")",
		         index, u->valuestring, n->valuestring);
	} else if (hu) {
		snprintf(dst, len, "app[%d] (uuid %.36s)", index,
		         u->valuestring);
	} else if (hn) {
		snprintf(dst, len, "app[%d] (name \"%.64s\")", index,
		         n->valuestring);
	} else {
		snprintf(dst, len, "app[%d]", index);
	}
}

static void
lower_uuid(char *u)
{
	for (; *u; u++) {
		if (*u >= 'A' && *u <= 'F') {
			*u = (char) (*u - 'A' + 'a');
		}
	}
}

/* What the schema cannot say about a vtpm object. */
static int
check_vtpm(const struct vtpm_spec *v, char *err, size_t errlen)
{
	if (!v->enabled) {
		/* no vTPM: the version is not used, so it cannot be wrong */
		return 0;
	}
	if (strcmp(v->version, "2.0") == 0) {
		return 0;
	}
	if (strcmp(v->version, "1.2") == 0) {
		if (v->model == VTPM_MODEL_CRB) {
			snprintf(
			    err, errlen,
			    "field vtpm.version: model crb requires TPM 2.0, "
			    "and TPM 1.2 is not supported");
		} else {
			snprintf(err, errlen,
			         "field vtpm.version: TPM 1.2 is not supported "
			         "(only \"2.0\")");
		}
		return -1;
	}
	if (v->model == VTPM_MODEL_CRB) {
		snprintf(
		    err, errlen,
		    "field vtpm.version: model crb requires version \"2.0\", "
		    "not \"%s\"",
		    v->version);
	} else {
		snprintf(err, errlen,
		         "field vtpm.version: unsupported version \"%s\" (only "
		         "\"2.0\")",
		         v->version);
	}
	return -1;
}

static void
parse_entry(const struct schema *s, int index, const cJSON *obj,
            struct dmcfg_app *a)
{
	struct dmcfg_entry e;
	char               label[192], why[REASON_LEN];

	memset(a, 0, sizeof(*a));
	a->index = index;
	entry_label(label, sizeof(label), index, obj);
	if (!cJSON_IsObject(obj)) {
		snprintf(a->error, sizeof(a->error), "%s: expected an object",
		         label);
		snprintf(a->detail, sizeof(a->detail), "expected an object");
		return;
	}
	if (schema_decode(s, obj, &e, why, sizeof(why)) < 0 ||
	    check_vtpm(&e.vtpm, why, sizeof(why)) < 0) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, "uuid");

		/* keep a good uuid: a rejected entry of a known app must
		 * still find that app */
		if (cJSON_IsString(u) && uuid_valid(u->valuestring)) {
			snprintf(a->uuid, sizeof(a->uuid), "%s",
			         u->valuestring);
			lower_uuid(a->uuid);
		}
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, "name");
		if (cJSON_IsString(n) && n->valuestring != NULL &&
		    strlen(n->valuestring) < sizeof(a->name)) {
			snprintf(a->name, sizeof(a->name), "%s",
			         n->valuestring);
		}
		strfmt(a->error, sizeof(a->error), "%s: %s", label, why);
		snprintf(a->detail, sizeof(a->detail), "%s", why);
		return;
	}
	memcpy(a->uuid, e.uuid, sizeof(a->uuid));
	/* one spelling per VM: keys and file names use lower case */
	lower_uuid(a->uuid);
	memcpy(a->name, e.name, sizeof(a->name));
	a->activate = e.activate;
	a->vtpm = e.vtpm;
	a->valid = true;
}

/* Every entry sharing a UUID is rejected: which one the controller meant
 * cannot be known, and picking by position would hide the mistake. */
static void
reject_duplicates(struct dmcfg *cfg)
{
	for (size_t i = 0; i < cfg->napps; i++) {
		struct dmcfg_app *a = &cfg->apps[i];
		int               first = -1, count = 0;

		if (a->uuid[0] == '\0') {
			continue;
		}
		for (size_t j = 0; j < cfg->napps; j++) {
			if (strcasecmp(cfg->apps[j].uuid, a->uuid) == 0) {
				if (first < 0) {
					first = (int) j;
				}
				count++;
			}
		}
		if (count < 2) {
			continue;
		}
		char label[192];

		snprintf(label, sizeof(label), "app[%d] (uuid %s%s%s%s)",
		         a->index, a->uuid, a->name[0] ? ", name \"" : "",
		         a->name, a->name[0] ? "\"" : "");
		if (a->valid || strstr(a->error, "duplicate") == NULL) {
			strfmt(
			    a->error, sizeof(a->error),
			    "%s: field uuid: duplicate uuid, listed %d "
			    "times (first at app[%d]); every copy is rejected",
			    label, count, cfg->apps[first].index);
			strfmt(a->detail, sizeof(a->detail),
			       "field uuid: duplicate uuid, listed %d times "
			       "(first at app[%d]); every copy is rejected",
			       count, cfg->apps[first].index);
		}
		a->valid = false;
	}
}

int
dmcfg_parse(const char *buf, size_t len, struct dmcfg *cfg, char *err,
            size_t errlen)
{
	cJSON        *doc;
	const cJSON  *list, *item;
	struct schema s;
	struct field  f[4];
	const char   *end = NULL;
	char         *text;
	int           n, i = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (len > DMCFG_MAX_BYTES) {
		snprintf(err, errlen,
		         "config of %zu bytes is over the limit "
		         "of %u",
		         len, DMCFG_MAX_BYTES);
		return -1;
	}
	if (entry_schema(&s, f) < 0) {
		snprintf(err, errlen, "no vtpm schema in DomainStatus");
		return -1;
	}
	/* a NUL-terminated copy: cJSON can then refuse trailing garbage */
	if ((text = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	doc = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
	if (doc == NULL) {
		size_t off =
		    end != NULL && end >= text ? (size_t) (end - text) : 0;
		int line = 1;

		for (size_t k = 0; k < off && k < len; k++) {
			line += text[k] == '\n';
		}
		snprintf(err, errlen, "not valid JSON (near byte %zu, line %d)",
		         off, line);
		free(text);
		return -1;
	}
	free(text);
	if (cJSON_IsArray(doc)) {
		list = doc;
	} else if (cJSON_IsObject(doc)) {
		cJSON_ArrayForEach(item, doc)
		{
			if (item->string == NULL ||
			    strcmp(item->string, "apps") != 0) {
				snprintf(
				    err, errlen,
				    "unknown top-level field \"%.64s\" (only "
				    "\"apps\")",
				    item->string ? item->string : "");
				cJSON_Delete(doc);
				return -1;
			}
		}
		list = cJSON_GetObjectItemCaseSensitive(doc, "apps");
		if (!cJSON_IsArray(list)) {
			snprintf(err, errlen, "%s",
			         list == NULL
			             ? "missing field \"apps\""
			             : "field \"apps\": expected an array");
			cJSON_Delete(doc);
			return -1;
		}
	} else {
		snprintf(err, errlen,
		         "expected an object {\"apps\": [...]} or an array");
		cJSON_Delete(doc);
		return -1;
	}
	n = cJSON_GetArraySize(list);
	if (n > DMCFG_MAX_APPS) {
		snprintf(err, errlen, "%d apps, over the limit of %d", n,
		         DMCFG_MAX_APPS);
		cJSON_Delete(doc);
		return -1;
	}
	cfg->apps = calloc(n > 0 ? (size_t) n : 1, sizeof(*cfg->apps));
	if (cfg->apps == NULL) {
		snprintf(err, errlen, "out of memory");
		cJSON_Delete(doc);
		return -1;
	}
	cJSON_ArrayForEach(item, list)
	{
		parse_entry(&s, i, item, &cfg->apps[i]);
		i++;
	}
	cfg->napps = (size_t) i;
	reject_duplicates(cfg);
	for (size_t k = 0; k < cfg->napps; k++) {
		cfg->nerrors += !cfg->apps[k].valid;
	}
	cJSON_Delete(doc);
	return 0;
}

int
dmcfg_load(const char *path, struct dmcfg *cfg, char *err, size_t errlen)
{
	char  *buf = NULL;
	size_t len = 0;
	char   why[REASON_LEN];

	memset(cfg, 0, sizeof(*cfg));
	if (read_file(path, DMCFG_MAX_BYTES, &buf, &len) < 0) {
		snprintf(err, errlen, "config %s: %s", path,
		         errno == EFBIG ? "file over the 4 MiB limit"
		                        : strerror(errno));
		return -1;
	}
	if (dmcfg_parse(buf, len, cfg, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "config %s: %s", path, why);
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
}

void
dmcfg_free(struct dmcfg *cfg)
{
	free(cfg->apps);
	memset(cfg, 0, sizeof(*cfg));
}

const struct dmcfg_app *
dmcfg_find(const struct dmcfg *cfg, const char *uuid)
{
	for (size_t i = 0; i < cfg->napps; i++) {
		if (cfg->apps[i].valid &&
		    strcasecmp(cfg->apps[i].uuid, uuid) == 0) {
			return &cfg->apps[i];
		}
	}
	return NULL;
}
