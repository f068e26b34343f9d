/*
 * pcrset.c: the vault PCR set ("0-4,6-14"), PCR lists and the update
 * agent's prediction file.
 */
#include "keyfmt.h"
#include "common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
pcrset_parse(const char *s, uint32_t *mask, char *err, size_t errlen)
{
	const char *p = s;
	uint32_t    m = 0;

	*mask = 0;
	if (s == NULL || *s == '\0') {
		snprintf(err, errlen, "PCR set is empty");
		return -1;
	}
	while (*p != '\0') {
		char *end;
		long  lo, hi;

		if (*p < '0' || *p > '9') {
			snprintf(
			    err, errlen,
			    "PCR set \"%.64s\": expected a number at \"%.16s\"",
			    s, p);
			return -1;
		}
		lo = strtol(p, &end, 10);
		hi = lo;
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9') {
				snprintf(err, errlen,
				         "PCR set \"%.64s\": bad range", s);
				return -1;
			}
			hi = strtol(p, &end, 10);
		}
		if (lo < 0 || hi >= SEAL_PCR_MAX || lo > hi) {
			snprintf(err, errlen,
			         "PCR set \"%.64s\": index %ld out of 0-%d", s,
			         lo > hi ? lo : hi, SEAL_PCR_MAX - 1);
			return -1;
		}
		for (long i = lo; i <= hi; i++) {
			if (m & (1u << i)) {
				snprintf(
				    err, errlen,
				    "PCR set \"%.64s\": PCR %ld listed twice",
				    s, i);
				return -1;
			}
			m |= 1u << i;
		}
		p = end;
		if (*p == ',') {
			p++;
			if (*p == '\0') {
				snprintf(err, errlen,
				         "PCR set \"%.64s\": trailing comma",
				         s);
				return -1;
			}
		} else if (*p != '\0') {
			snprintf(err, errlen,
			         "PCR set \"%.64s\": unexpected \"%c\"", s, *p);
			return -1;
		}
	}
	if (!(m & 1u)) {
		snprintf(err, errlen,
		         "PCR set \"%.64s\" must hold PCR 0 (the firmware)", s);
		return -1;
	}
	if (m & (1u << 5)) {
		snprintf(err, errlen,
		         "PCR set \"%.64s\" must not hold PCR 5 (the GPT, "
		         "rewritten by A/B updates)",
		         s);
		return -1;
	}
	*mask = m;
	return 0;
}

void
pcrset_format(uint32_t mask, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < SEAL_PCR_MAX && n < len; i++) {
		if (mask & (1u << i)) {
			int w =
			    snprintf(buf + n, len - n, "%s%d", n ? "," : "", i);
			if (w < 0 || (size_t) w >= len - n) {
				break;
			}
			n += (size_t) w;
		}
	}
}

/* A prediction file: [{bank, index, value}, ...] or {"predicted": [...]} */
struct prediction_entry {
	int     bank;
	int64_t index;
	uint8_t value[32];
};
struct prediction_file {
	struct prediction_entry predicted[SEAL_PCR_MAX];
	int                     n;
};

static const char *const prediction_banks[] = {"sha256", NULL};

static const struct field prediction_entry_fields[] = {
    FENUM(struct prediction_entry, bank, FF_REQUIRED, prediction_banks, 0),
    FINT(struct prediction_entry, index, FF_REQUIRED, 0, SEAL_PCR_MAX - 1),
    FHEX(struct prediction_entry, value, FF_REQUIRED),
};
static const struct schema prediction_entry_schema =
    SCHEMA("predicted value", MSG_NONE, struct prediction_entry,
           prediction_entry_fields);
static const struct field prediction_fields[] = {
    FARRAY(struct prediction_file, predicted, n, FF_REQUIRED, 1,
           &prediction_entry_schema),
};
static const struct schema prediction_schema =
    SCHEMA("prediction", MSG_NONE, struct prediction_file, prediction_fields);

/* The values of a decoded prediction; -1 when a PCR is named twice. */
static int
prediction_values(const struct prediction_file *f, struct pcr_values *out,
                  uint32_t *named, char *err, size_t errlen)
{
	for (int k = 0; k < f->n; k++) {
		int i = (int) f->predicted[k].index;

		if (*named & (1u << i)) {
			snprintf(
			    err, errlen,
			    "field predicted[%d].index: PCR %d given twice", k,
			    i);
			return -1;
		}
		memcpy(out->v[i], f->predicted[k].value, 32);
		*named |= 1u << i;
	}
	return 0;
}

int
pcrset_parse_prediction(const char *json, size_t len, struct pcr_values *out,
                        uint32_t *named, char *err, size_t errlen)
{
	char                    why[256];
	cJSON                  *o = msg_json_parse(json, len, why, sizeof(why));
	cJSON                  *w = NULL;
	struct prediction_file *f = calloc(1, sizeof(*f));
	int                     rc = -1;

	memset(out, 0, sizeof(*out));
	*named = 0;
	if (o == NULL || f == NULL) {
		/* "not JSON"; a NUL says where it is */
		snprintf(err, errlen, "%s",
		         f == NULL                    ? "out of memory"
		         : strstr(why, "NUL") != NULL ? why
		                                      : "not JSON");
	} else if (cJSON_IsArray(o) &&
	           ((w = cJSON_CreateObject()) == NULL ||
	            !cJSON_AddItemReferenceToObject(w, "predicted", o))) {
		/* the bare array is the "predicted" member of an object */
		snprintf(err, errlen, "out of memory");
	} else if (schema_decode(&prediction_schema, w != NULL ? w : o, f, err,
	                         errlen) == 0 &&
	           prediction_values(f, out, named, err, errlen) == 0) {
		rc = 0;
	}
	if (rc < 0) {
		memset(out, 0, sizeof(*out));
		*named = 0;
	}
	free(f);
	cJSON_Delete(w);
	cJSON_Delete(o);
	return rc;
}

int
pcrset_list_parse(const char *s, uint32_t *mask)
{
	const char *p = s;

	*mask = 0;
	while (p != NULL && *p != '\0') {
		char *end;
		long  i;

		if (*p < '0' || *p > '9') {
			return -1;
		}
		i = strtol(p, &end, 10);
		if (i < 0 || i > 15 || (*mask & (1u << i))) {
			return -1;
		}
		*mask |= 1u << i;
		p = end;
		if (*p == ',') {
			p++;
			if (*p == '\0') {
				return -1;
			}
		} else if (*p != '\0') {
			return -1;
		}
	}
	return 0;
}
