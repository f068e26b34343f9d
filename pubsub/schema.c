/*
 * schema.c: the declarative field tables for every message type, and the
 * one decoder/encoder that walks them. Daemons never parse JSON by hand.
 */
#include "msg.h"
#include "common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* ---- enum vocabularies (wire names) ---- */

static const char *const dom_states[] = {
    "CREATING", "BOOTING", "RUNNING", "HALTING", "HALTED", "DELETED", NULL};
static const char *const vtpm_states[] = {"STARTING", "READY", "FAILED",
                                          "STOPPED", NULL};
static const char *const models[] = {"tis", "crb", NULL};
static const char *const modes[] = {"persistent", "ephemeral", NULL};
const char *const        state_class_names[] = {"new",   "normal",  "restored",
                                                "reset", "missing", "purged",
                                                "error", "unknown", NULL};
static const char *const kb_states[] = {"STARTING",        "READY", "NO_HW_TPM",
                                        "POLICY_MISMATCH", "ERROR", NULL};
static const char *const key_statuses[] = {
    "ok", "no-hw-tpm", "policy-mismatch", "error", "denied", NULL};
static const char *const gops[] = {"prepare", "restore", "reset", "release",
                                   "purge",   "query",   NULL};
static const char *const kops[] = {"status", "announce", "recover-begin",
                                   "recover", NULL};
static const char *const escrow_states[] = {"off", "stored", "missing", NULL};
static const char *const aops[] = {"info",       "activate", "set-ak-cert",
                                   "certify-ek", "quote",    NULL};
static const char *const ek_modes[] = {"none", "cert", "persist", NULL};

static const char *
enum_name(const char *const *names, int v)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (i == v) {
			return names[i];
		}
	}
	return "?";
}

const char *
dom_state_name(int v)
{
	return enum_name(dom_states, v);
}
const char *
vtpm_state_name(int v)
{
	return enum_name(vtpm_states, v);
}
const char *
vtpm_model_name(int v)
{
	return enum_name(models, v);
}
const char *
vtpm_mode_name(int v)
{
	return enum_name(modes, v);
}
const char *
state_class_name(int v)
{
	return enum_name(state_class_names, v);
}
const char *
kb_state_name(int v)
{
	return enum_name(kb_states, v);
}
const char *
key_status_name(int v)
{
	return enum_name(key_statuses, v);
}
const char *
guardian_op_name(int v)
{
	return enum_name(gops, v);
}
const char *
key_admin_op_name(int v)
{
	return enum_name(kops, v);
}
const char *
escrow_state_name(int v)
{
	return enum_name(escrow_states, v);
}
const char *
attest_op_name(int v)
{
	return enum_name(aops, v);
}

/* ---- field table helpers ---- */

static const struct field vtpm_spec_fields[] = {
    FBOOL(struct vtpm_spec, enabled, 0, 1),
    {.name = "version",
     .kind = FK_STRING,
     .offset = offsetof(struct vtpm_spec, version),
     .size = sizeof(((struct vtpm_spec *) 0)->version),
     .defstr = "2.0"},
    FENUM(struct vtpm_spec, model, 0, models, VTPM_MODEL_TIS),
    FENUM(struct vtpm_spec, mode, 0, modes, VTPM_MODE_PERSISTENT),
    /* false/true are the older spellings of "none"/"cert" */
    FENUM(struct vtpm_spec, ek, FF_BOOL_ALIAS, ek_modes, VTPM_EK_CERT),
};
static const struct schema vtpm_spec_schema =
    SCHEMA("vtpm", MSG_NONE, struct vtpm_spec, vtpm_spec_fields);

static const struct field domain_status_fields[] = {
    FUUID(struct domain_status, uuid, FF_REQUIRED),
    FSTR(struct domain_status, name, 0),
    FENUM(struct domain_status, state, FF_REQUIRED, dom_states, 0),
    {.name = "vtpm",
     .kind = FK_OBJECT,
     .offset = offsetof(struct domain_status, vtpm),
     .size = sizeof(struct vtpm_spec),
     .sub = &vtpm_spec_schema},
    FSTR(struct domain_status, reason, FF_OMIT_EMPTY),
};

static const struct field vtpm_status_fields[] = {
    FUUID(struct vtpm_status, uuid, FF_REQUIRED),
    FSTR(struct vtpm_status, name, 0),
    FENUM(struct vtpm_status, state, FF_REQUIRED, vtpm_states, 0),
    FENUM(struct vtpm_status, model, 0, models, VTPM_MODEL_TIS),
    FENUM(struct vtpm_status, mode, 0, modes, VTPM_MODE_PERSISTENT),
    FSTR(struct vtpm_status, ctrl_socket, 0),
    FINT(struct vtpm_status, pid, 0, 0, INT32_MAX),
    FENUM(struct vtpm_status, health, 0, state_class_names, STATE_UNKNOWN),
    FBOOL(struct vtpm_status, encrypted, 0, 0),
    FSTR(struct vtpm_status, reason, FF_OMIT_EMPTY),
};

static const struct field state_health_fields[] = {
    FUUID(struct vtpm_state_health, uuid, FF_REQUIRED),
    FENUM(struct vtpm_state_health, classification, FF_REQUIRED,
          state_class_names, 0),
    FINT(struct vtpm_state_health, generation, 0, 0, INT64_MAX),
    FINT(struct vtpm_state_health, last_backup, 0, 0, INT64_MAX),
    FSTR(struct vtpm_state_health, reason, FF_OMIT_EMPTY),
};

static const struct field kb_status_fields[] = {
    FUUID(struct keybroker_status, uuid, FF_REQUIRED),
    FENUM(struct keybroker_status, state, FF_REQUIRED, kb_states, 0),
    FSTR(struct keybroker_status, pcrs, 0),
    FSTR(struct keybroker_status, changed_pcrs, FF_OMIT_EMPTY),
    FINT(struct keybroker_status, rc, 0, 0, UINT32_MAX),
    FSTR(struct keybroker_status, reason, FF_OMIT_EMPTY),
};

static const struct field key_req_fields[] = {
    FUUID(struct key_release_req, uuid, FF_REQUIRED),
};

static const struct field key_rep_fields[] = {
    FUUID(struct key_release_rep, uuid, FF_REQUIRED),
    FENUM(struct key_release_rep, status, FF_REQUIRED, key_statuses, 0),
    FHEX(struct key_release_rep, key, FF_OMIT_EMPTY | FF_SECRET),
    FSTR(struct key_release_rep, reason, FF_OMIT_EMPTY),
};

static const struct field guardian_req_fields[] = {
    FENUM(struct guardian_req, op, FF_REQUIRED, gops, 0),
    FUUID(struct guardian_req, uuid, FF_REQUIRED),
    FENUM(struct guardian_req, mode, 0, modes, VTPM_MODE_PERSISTENT),
    FBOOL(struct guardian_req, encrypted, 0, 0),
};

static const struct field guardian_rep_fields[] = {
    FUUID(struct guardian_rep, uuid, FF_REQUIRED),
    FBOOL(struct guardian_rep, ok, FF_REQUIRED, 0),
    FENUM(struct guardian_rep, classification, 0, state_class_names,
          STATE_UNKNOWN),
    FSTR(struct guardian_rep, state_dir, 0),
    FBOOL(struct guardian_rep, encrypted, 0, 0),
    FINT(struct guardian_rep, generation, 0, 0, INT64_MAX),
    FSTR(struct guardian_rep, reason, FF_OMIT_EMPTY),
};

#define FPCR(i)                                                                \
	{                                                                      \
		.name = #i, .kind = FK_HEXBYTES,                               \
		.offset = offsetof(struct pcr_values, v) + (i) *32,            \
		.size = 32, .flags = FF_OMIT_EMPTY                             \
	}
static const struct field pcr_values_fields[] = {
    FPCR(0),  FPCR(1),  FPCR(2),  FPCR(3), FPCR(4),  FPCR(5),
    FPCR(6),  FPCR(7),  FPCR(8),  FPCR(9), FPCR(10), FPCR(11),
    FPCR(12), FPCR(13), FPCR(14), FPCR(15)};
static const struct schema pcr_values_schema =
    SCHEMA("values", MSG_NONE, struct pcr_values, pcr_values_fields);
const struct schema pcr_values_seen_schema = {
    .name = "values",
    .type = MSG_NONE,
    .size = sizeof(struct pcr_values_seen),
    .fields = pcr_values_fields,
    .nfields = NELEM(pcr_values_fields),
    .seen_at = 1 + offsetof(struct pcr_values_seen, seen)};

static const struct field key_admin_req_fields[] = {
    FENUM(struct key_admin_req, op, FF_REQUIRED, kops, 0),
    FSTR(struct key_admin_req, pcrs, FF_OMIT_EMPTY),
    {.name = "values",
     .kind = FK_OBJECT,
     .offset = offsetof(struct key_admin_req, values),
     .size = sizeof(struct pcr_values),
     .sub = &pcr_values_schema},
    FSTR(struct key_admin_req, data, FF_OMIT_EMPTY),
};

static const struct field key_admin_rep_fields[] = {
    FENUM(struct key_admin_rep, status, FF_REQUIRED, key_statuses, 0),
    FSTR(struct key_admin_rep, reason, FF_OMIT_EMPTY),
    FSTR(struct key_admin_rep, pcrs, 0),
    FINT(struct key_admin_rep, branches, 0, 0, 2),
    FHEX(struct key_admin_rep, digest0, FF_OMIT_EMPTY),
    FHEX(struct key_admin_rep, digest1, FF_OMIT_EMPTY),
    FINT(struct key_admin_rep, matches, 0, -1, 1),
    FSTR(struct key_admin_rep, changed_pcrs, FF_OMIT_EMPTY),
    FBOOL(struct key_admin_rep, pending, 0, 0),
    FINT(struct key_admin_rep, boots_seen, 0, 0, INT32_MAX),
    FINT(struct key_admin_rep, pending_boots, 0, 0, INT32_MAX),
    FENUM(struct key_admin_rep, escrow, 0, escrow_states, ESCROW_OFF),
    FSTR(struct key_admin_rep, escrow_key, FF_OMIT_EMPTY),
    FSTR(struct key_admin_rep, data, FF_OMIT_EMPTY),
};

static const struct field error_fields[] = {
    FSTR(struct error_rep, reason, FF_REQUIRED),
};

static const struct field attest_req_fields[] = {
    FENUM(struct attest_req, op, FF_REQUIRED, aops, 0),
    FUUID(struct attest_req, uuid, FF_REQUIRED),
    FSTR(struct attest_req, ek_pub, FF_OMIT_EMPTY),
    FSTR(struct attest_req, credential_blob, FF_OMIT_EMPTY),
    FSTR(struct attest_req, secret, FF_OMIT_EMPTY),
    FSTR(struct attest_req, ak_cert, FF_OMIT_EMPTY),
    FSTR(struct attest_req, nonce, FF_OMIT_EMPTY),
};

static const struct field attest_rep_fields[] = {
    FUUID(struct attest_rep, uuid, FF_REQUIRED),
    FBOOL(struct attest_rep, ok, FF_REQUIRED, 0),
    FSTR(struct attest_rep, device_id, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, ek_pub, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, ak_pub, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, ak_cert, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, credential, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, ek_cert, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, hw_ek_cert, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, hw_ek_cert_ecc, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, pcrs, FF_OMIT_EMPTY),
    {.name = "values",
     .kind = FK_OBJECT,
     .offset = offsetof(struct attest_rep, values),
     .size = sizeof(struct pcr_values),
     .sub = &pcr_values_schema},
    FSTR(struct attest_rep, quote, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, signature, FF_OMIT_EMPTY),
    FSTR(struct attest_rep, reason, FF_OMIT_EMPTY),
};

/* Indexed by enum msg_type: the one table of the vocabulary. */
static const struct schema schemas[MSG_TYPE_COUNT] = {
    [MSG_DOMAIN_STATUS] = SCHEMA("DomainStatus", MSG_DOMAIN_STATUS,
                                 struct domain_status, domain_status_fields),
    [MSG_VTPM_STATUS] = SCHEMA("VtpmStatus", MSG_VTPM_STATUS,
                               struct vtpm_status, vtpm_status_fields),
    [MSG_VTPM_STATE_HEALTH] =
        SCHEMA("VtpmStateHealth", MSG_VTPM_STATE_HEALTH,
               struct vtpm_state_health, state_health_fields),
    [MSG_KEYBROKER_STATUS] = SCHEMA("KeyBrokerStatus", MSG_KEYBROKER_STATUS,
                                    struct keybroker_status, kb_status_fields),
    [MSG_KEY_RELEASE_REQ] = SCHEMA("KeyRelease", MSG_KEY_RELEASE_REQ,
                                   struct key_release_req, key_req_fields),
    [MSG_KEY_RELEASE_REP] = SCHEMA("KeyReleaseReply", MSG_KEY_RELEASE_REP,
                                   struct key_release_rep, key_rep_fields),
    [MSG_GUARDIAN_REQ] = SCHEMA("GuardianRequest", MSG_GUARDIAN_REQ,
                                struct guardian_req, guardian_req_fields),
    [MSG_GUARDIAN_REP] = SCHEMA("GuardianReply", MSG_GUARDIAN_REP,
                                struct guardian_rep, guardian_rep_fields),
    [MSG_ERROR_REP] =
        SCHEMA("Error", MSG_ERROR_REP, struct error_rep, error_fields),
    [MSG_KEY_ADMIN_REQ] = SCHEMA("KeyAdmin", MSG_KEY_ADMIN_REQ,
                                 struct key_admin_req, key_admin_req_fields),
    [MSG_KEY_ADMIN_REP] = SCHEMA("KeyAdminReply", MSG_KEY_ADMIN_REP,
                                 struct key_admin_rep, key_admin_rep_fields),
    [MSG_ATTEST_REQ] = SCHEMA("AttestRequest", MSG_ATTEST_REQ,
                              struct attest_req, attest_req_fields),
    [MSG_ATTEST_REP] = SCHEMA("AttestReply", MSG_ATTEST_REP, struct attest_rep,
                              attest_rep_fields),
};

const struct schema *
msg_schema(enum msg_type type)
{
	if (type <= MSG_NONE || type >= MSG_TYPE_COUNT ||
	    schemas[type].name == NULL) {
		return NULL; /* out of range, or an unused number */
	}
	return &schemas[type];
}

size_t
msg_max_size(void)
{
	size_t max = 0;

	for (int t = MSG_NONE + 1; t < MSG_TYPE_COUNT; t++) {
		if (schemas[t].name != NULL && schemas[t].size > max) {
			max = schemas[t].size;
		}
	}
	return max;
}

const struct schema *
msg_schema_by_name(const char *name)
{
	for (int t = MSG_NONE + 1; t < MSG_TYPE_COUNT; t++) {
		if (schemas[t].name != NULL &&
		    strcmp(schemas[t].name, name) == 0) {
			return &schemas[t];
		}
	}
	return NULL;
}

const char *
msg_type_name(enum msg_type type)
{
	const struct schema *s = msg_schema(type);

	return s ? s->name : "?";
}

/* ---- decode ---- */

static void
apply_defaults(const struct schema *s, void *out)
{
	for (size_t i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];
		char               *dst = (char *) out + f->offset;

		switch (f->kind) {
		case FK_BOOL:
			*(bool *) dst = f->def != 0;
			break;
		case FK_ENUM:
		case FK_INT32:
			*(int *) dst = (int) f->def;
			break;
		case FK_INT:
			*(int64_t *) dst = f->def;
			break;
		case FK_STRING:
			if (f->defstr != NULL) {
				snprintf(dst, f->size, "%s", f->defstr);
			}
			break;
		case FK_OBJECT:
			apply_defaults(f->sub, dst);
			break;
		default:
			break;
		}
	}
}

static const struct field *
find_field(const struct schema *s, const char *name)
{
	for (size_t i = 0; i < s->nfields; i++) {
		if (strcmp(s->fields[i].name, name) == 0) {
			return &s->fields[i];
		}
	}
	return NULL;
}

/* decode_field by kind: v into dst (the field in the struct). */
static int
decode_string(const struct field *f, const cJSON *v, char *dst,
              const char *prefix, char *err, size_t errlen)
{
	size_t len;

	if (!cJSON_IsString(v) || v->valuestring == NULL) {
		snprintf(err, errlen, "field %s%s: expected a string", prefix,
		         f->name);
		return -1;
	}
	len = strlen(v->valuestring);
	if (len >= f->size) {
		snprintf(err, errlen,
		         "field %s%s: string of %zu bytes over its limit "
		         "of %zu",
		         prefix, f->name, len, f->size - 1);
		return -1;
	}
	if (f->kind == FK_UUID && !uuid_valid(v->valuestring)) {
		snprintf(err, errlen, "field %s%s: invalid UUID \"%s\"", prefix,
		         f->name, v->valuestring);
		return -1;
	}
	memcpy(dst, v->valuestring, len + 1);
	return 0;
}

static int
decode_int(const struct field *f, const cJSON *v, char *dst, const char *prefix,
           char *err, size_t errlen)
{
	double d;

	if (!cJSON_IsNumber(v)) {
		snprintf(err, errlen, "field %s%s: expected a number", prefix,
		         f->name);
		return -1;
	}
	d = v->valuedouble;
	/* JSON numbers are doubles, and cJSON prints them with 15
	 * significant digits: past MSG_INT_MAX what we decode would
	 * not encode back to the same value */
	if (d != floor(d) || d < (double) f->min || d > (double) f->max ||
	    fabs(d) > (double) MSG_INT_MAX) {
		snprintf(err, errlen,
		         "field %s%s: %g is not an integer in [%lld, %lld]",
		         prefix, f->name, d, (long long) f->min,
		         (long long) f->max);
		return -1;
	}
	if (f->kind == FK_INT) {
		*(int64_t *) dst = (int64_t) d;
	} else {
		*(int *) dst = (int) d;
	}
	return 0;
}

static int
decode_enum(const struct field *f, const cJSON *v, char *dst,
            const char *prefix, char *err, size_t errlen)
{
	if ((f->flags & FF_BOOL_ALIAS) && cJSON_IsBool(v)) {
		*(int *) dst = cJSON_IsTrue(v) ? 1 : 0;
		return 0;
	}
	if (!cJSON_IsString(v) || v->valuestring == NULL) {
		snprintf(err, errlen, "field %s%s: expected a string", prefix,
		         f->name);
		return -1;
	}
	for (int i = 0; f->enum_names[i] != NULL; i++) {
		if (strcmp(f->enum_names[i], v->valuestring) == 0) {
			*(int *) dst = i;
			return 0;
		}
	}
	snprintf(err, errlen, "field %s%s: unknown value \"%.64s\"", prefix,
	         f->name, v->valuestring);
	return -1;
}

static int
decode_hexbytes(const struct field *f, const cJSON *v, char *dst,
                const char *prefix, char *err, size_t errlen)
{
	const char *h;

	if (!cJSON_IsString(v) || v->valuestring == NULL ||
	    strlen(v->valuestring) != 2 * f->size) {
		snprintf(err, errlen, "field %s%s: expected %zu hex digits",
		         prefix, f->name, 2 * f->size);
		return -1;
	}
	h = v->valuestring;
	if (hex_decode(h, 2 * f->size, (uint8_t *) dst, f->size) < 0) {
		snprintf(err, errlen, "field %s%s: not a hex digit", prefix,
		         f->name);
		return -1;
	}
	return 0;
}

/* FK_HEXVAR: an even number of hex digits, min to size bytes. */
static int
decode_hexvar(const struct field *f, const cJSON *v, void *out,
              const char *prefix, char *err, size_t errlen)
{
	size_t len;
	int    n;

	if (!cJSON_IsString(v) || v->valuestring == NULL) {
		snprintf(err, errlen, "field %s%s: expected a hex string",
		         prefix, f->name);
		return -1;
	}
	len = strlen(v->valuestring);
	if (len > 2 * f->size || len < 2 * (size_t) f->min) {
		snprintf(err, errlen,
		         "field %s%s: %zu hex digits, expected %lld to %zu",
		         prefix, f->name, len, 2 * (long long) f->min,
		         2 * f->size);
		return -1;
	}
	n = hex_decode(v->valuestring, len, (uint8_t *) out + f->offset,
	               f->size);
	if (n < 0) {
		snprintf(err, errlen,
		         "field %s%s: not an even run of hex digits", prefix,
		         f->name);
		return -1;
	}
	*(size_t *) ((char *) out + f->len_offset) = (size_t) n;
	return 0;
}

/* FK_ARRAY: min to size / sub->size objects of sub, each with its
 * defaults; errors name the element ("branches[1].digest"). */
static int
decode_array(const struct field *f, const cJSON *v, void *out,
             const char *prefix, char *err, size_t errlen)
{
	size_t       max = f->size / f->sub->size;
	int          n = 0;
	const cJSON *e;

	if (!cJSON_IsArray(v)) {
		snprintf(err, errlen, "field %s%s: expected an array", prefix,
		         f->name);
		return -1;
	}
	if ((size_t) cJSON_GetArraySize(v) > max ||
	    cJSON_GetArraySize(v) < f->min) {
		snprintf(err, errlen,
		         "field %s%s: %d elements, expected %lld to %zu",
		         prefix, f->name, cJSON_GetArraySize(v),
		         (long long) f->min, max);
		return -1;
	}
	cJSON_ArrayForEach(e, v)
	{
		char  sub[80];
		char *dst =
		    (char *) out + f->offset + (size_t) n * f->sub->size;

		snprintf(sub, sizeof(sub), "%s%s[%d].", prefix, f->name, n);
		if (!cJSON_IsObject(e)) {
			snprintf(err, errlen,
			         "field %s%s[%d]: expected an object", prefix,
			         f->name, n);
			return -1;
		}
		apply_defaults(f->sub, dst);
		if (schema_decode_prefixed(f->sub, e, dst, sub, err, errlen) <
		    0) {
			return -1;
		}
		n++;
	}
	*(int *) ((char *) out + f->len_offset) = n;
	return 0;
}

/* Decode one field value; prefix names the enclosing object for errors. */
static int
decode_field(const struct field *f, const cJSON *v, void *out,
             const char *prefix, char *err, size_t errlen)
{
	char *dst = (char *) out + f->offset;

	switch (f->kind) {
	case FK_STRING:
	case FK_UUID:
		return decode_string(f, v, dst, prefix, err, errlen);
	case FK_INT:
	case FK_INT32:
		return decode_int(f, v, dst, prefix, err, errlen);
	case FK_BOOL:
		if (!cJSON_IsBool(v)) {
			snprintf(err, errlen, "field %s%s: expected true/false",
			         prefix, f->name);
			return -1;
		}
		*(bool *) dst = cJSON_IsTrue(v);
		return 0;
	case FK_ENUM:
		return decode_enum(f, v, dst, prefix, err, errlen);
	case FK_HEXBYTES:
		return decode_hexbytes(f, v, dst, prefix, err, errlen);
	case FK_OBJECT: {
		char sub[80];

		snprintf(sub, sizeof(sub), "%s%s.", prefix, f->name);
		if (!cJSON_IsObject(v)) {
			snprintf(err, errlen, "field %s%s: expected an object",
			         prefix, f->name);
			return -1;
		}
		return schema_decode_prefixed(f->sub, v, dst, sub, err, errlen);
	}
	case FK_HEXVAR:
		return decode_hexvar(f, v, out, prefix, err, errlen);
	case FK_ARRAY:
		return decode_array(f, v, out, prefix, err, errlen);
	}
	snprintf(err, errlen, "field %s%s: bad schema", prefix, f->name);
	return -1;
}

int
schema_decode_prefixed(const struct schema *s, const cJSON *obj, void *out,
                       const char *prefix, char *err, size_t errlen)
{
	const cJSON *v;

	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "%s: expected a JSON object", s->name);
		return -1;
	}
	/* unknown fields first: a typo must not silently become a default */
	cJSON_ArrayForEach(v, obj)
	{
		if (v->string == NULL || find_field(s, v->string) == NULL) {
			snprintf(err, errlen, "unknown field %s%.64s", prefix,
			         v->string ? v->string : "(null)");
			return -1;
		}
	}
	for (size_t i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];

		v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
		if (v == NULL) {
			if (f->flags & FF_REQUIRED) {
				snprintf(err, errlen,
				         "missing required field %s%s", prefix,
				         f->name);
				return -1;
			}
			continue;
		}
		if ((f->flags & FF_NULLABLE) && cJSON_IsNull(v)) {
			continue;
		}
		if (decode_field(f, v, out, prefix, err, errlen) < 0) {
			return -1;
		}
		if (s->seen_at != 0 && i < 32) {
			*(uint32_t *) ((char *) out + s->seen_at - 1) |= 1u
			                                                 << i;
		}
	}
	return 0;
}

int
schema_decode(const struct schema *s, const cJSON *obj, void *out, char *err,
              size_t errlen)
{
	/* decode into a scratch copy: nothing half-applied on error */
	char *tmp = calloc(1, s->size);

	if (tmp == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	apply_defaults(s, tmp);
	if (schema_decode_prefixed(s, obj, tmp, "", err, errlen) < 0) {
		explicit_bzero(tmp, s->size);
		free(tmp);
		memset(out, 0, s->size);
		return -1;
	}
	memcpy(out, tmp, s->size);
	explicit_bzero(tmp, s->size);
	free(tmp);
	return 0;
}

/* ---- encode ---- */

static bool
all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		acc |= p[i];
	}
	return acc == 0;
}

static cJSON *
encode_hexvar(const struct field *f, const void *in)
{
	size_t n = *(const size_t *) ((const char *) in + f->len_offset);
	char  *buf;
	cJSON *v;

	if (n > f->size || (buf = malloc(2 * n + 1)) == NULL) {
		return NULL;
	}
	hex_encode((const uint8_t *) in + f->offset, n, buf, 2 * n + 1);
	v = cJSON_CreateString(buf);
	explicit_bzero(buf, 2 * n + 1);
	free(buf);
	return v;
}

static cJSON *
encode_array(const struct field *f, const void *in)
{
	int    n = *(const int *) ((const char *) in + f->len_offset);
	cJSON *arr;

	if (n < 0 || (size_t) n > f->size / f->sub->size ||
	    (arr = cJSON_CreateArray()) == NULL) {
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		cJSON *e = schema_encode(f->sub, (const char *) in + f->offset +
		                                     (size_t) i * f->sub->size);

		if (e == NULL) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, e);
	}
	return arr;
}

cJSON *
schema_encode(const struct schema *s, const void *in)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];
		const char         *src = (const char *) in + f->offset;
		cJSON              *v = NULL;

		switch (f->kind) {
		case FK_STRING:
		case FK_UUID: {
			/* never trust a struct to be NUL-terminated */
			size_t len = strnlen(src, f->size);
			char   sbuf[STATE_DIR_LEN + 1], *buf = sbuf;

			if (len == 0 && (f->flags & FF_OMIT_EMPTY)) {
				continue;
			}
			if (len == f->size) {
				len--;
			}
			/* long fields (certificates, key blobs): heap copy */
			if (len >= sizeof(sbuf) &&
			    (buf = malloc(len + 1)) == NULL) {
				cJSON_Delete(obj);
				return NULL;
			}
			memcpy(buf, src, len);
			buf[len] = '\0';
			v = cJSON_CreateString(buf);
			if (buf != sbuf) {
				free(buf);
			}
			break;
		}
		case FK_INT:
			v = cJSON_CreateNumber((double) *(const int64_t *) src);
			break;
		case FK_INT32:
			v = cJSON_CreateNumber((double) *(const int *) src);
			break;
		case FK_BOOL:
			v = cJSON_CreateBool(*(const bool *) src);
			break;
		case FK_ENUM:
			v = cJSON_CreateString(
			    enum_name(f->enum_names, *(const int *) src));
			break;
		case FK_HEXBYTES: {
			char buf[2 * 64 + 1];

			if (f->size > 64 ||
			    ((f->flags & FF_OMIT_EMPTY) &&
			     all_zero((const uint8_t *) src, f->size))) {
				continue;
			}
			hex_encode((const uint8_t *) src, f->size, buf,
			           sizeof(buf));
			v = cJSON_CreateString(buf);
			explicit_bzero(buf, sizeof(buf));
			break;
		}
		case FK_OBJECT:
			v = schema_encode(f->sub, src);
			break;
		case FK_HEXVAR:
			v = encode_hexvar(f, in);
			break;
		case FK_ARRAY:
			v = encode_array(f, in);
			break;
		}
		if (v == NULL) {
			schema_wipe_json(s, obj);
			cJSON_Delete(obj);
			return NULL;
		}
		cJSON_AddItemToObject(obj, f->name, v);
	}
	return obj;
}

void
schema_wipe_json(const struct schema *s, cJSON *obj)
{
	if (s == NULL || obj == NULL) {
		return;
	}
	for (size_t i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];
		cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);

		if (v == NULL) {
			continue;
		}
		if (f->kind == FK_OBJECT) {
			schema_wipe_json(f->sub, v);
		} else if (f->kind == FK_ARRAY) {
			const cJSON *e;

			cJSON_ArrayForEach(e, v)
			{
				schema_wipe_json(f->sub, (cJSON *) e);
			}
		} else if ((f->flags & FF_SECRET) && cJSON_IsString(v) &&
		           v->valuestring != NULL) {
			explicit_bzero(v->valuestring, strlen(v->valuestring));
		}
	}
}

/* ---- file formats ---- */

int
schema_decode_json(const char *what, const char *json, size_t len,
                   const struct schema *s, void *out, char *err, size_t errlen)
{
	char   why[256];
	cJSON *o = msg_json_parse(json, len, why, sizeof(why));
	int    rc;

	if (o == NULL) {
		memset(out, 0, s->size);
		/* "not JSON" as before; a NUL says where it is */
		snprintf(err, errlen, "%s: %s", what,
		         strstr(why, "NUL") != NULL ? why : "not JSON");
		return -1;
	}
	rc = schema_decode(s, o, out, why, sizeof(why));
	schema_wipe_json(s, o);
	cJSON_Delete(o);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", what, why);
	}
	return rc;
}

int
schema_load_file(const char *path, size_t max, const struct schema *s,
                 void *out, char *err, size_t errlen)
{
	char  *txt = NULL;
	size_t len;
	int    rc;

	if (read_file(path, max, &txt, &len) < 0) {
		memset(out, 0, s->size);
		if (errno == EFBIG) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path,
			         max);
		} else {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		}
		return -1;
	}
	rc = schema_decode_json(path, txt, len, s, out, err, errlen);
	explicit_bzero(txt, len);
	free(txt);
	return rc;
}

int
schema_store_file(const char *path, const struct schema *s, const void *in,
                  mode_t mode)
{
	cJSON *o = schema_encode(s, in);
	char  *txt = o != NULL ? cJSON_Print(o) : NULL;
	int    rc = -1;

	if (txt == NULL) {
		errno = ENOMEM;
	} else {
		rc = durable_write(path, txt, strlen(txt), mode);
		explicit_bzero(txt, strlen(txt));
	}
	free(txt);
	schema_wipe_json(s, o);
	cJSON_Delete(o);
	return rc;
}
