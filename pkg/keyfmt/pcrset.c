/*
 * pcrset.c: the vault PCR set ("0-4,6-14"), PCR lists and the update
 * agent's prediction file.
 */
#include "keyfmt.h"

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

static int
hexnib(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

static int
unhex32(const char *s, uint8_t *out)
{
	if (s == NULL || strlen(s) != 64) {
		return -1;
	}
	for (int i = 0; i < 32; i++) {
		int hi = hexnib(s[2 * i]), lo = hexnib(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			return -1;
		}
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	return 0;
}

int
pcrset_parse_prediction(const char *json, size_t len, struct pcr_values *out,
                        uint32_t *named, char *err, size_t errlen)
{
	cJSON       *o = cJSON_ParseWithLength(json, len);
	const cJSON *arr, *e;
	int          k = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	*named = 0;
	if (o == NULL) {
		snprintf(err, errlen, "not JSON");
		return -1;
	}
	arr = cJSON_IsArray(o)
	          ? o
	          : cJSON_GetObjectItemCaseSensitive(o, "predicted");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1) {
		snprintf(err, errlen,
		         "expected a non-empty array of {bank, index, value} "
		         "(or {\"predicted\": [...]})");
		goto out;
	}
	cJSON_ArrayForEach(e, arr)
	{
		const cJSON *bank = cJSON_GetObjectItemCaseSensitive(e, "bank");
		const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "index");
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(e, "value");
		int          i;

		if (!cJSON_IsObject(e)) {
			snprintf(err, errlen, "entry %d: not an object", k);
			goto out;
		}
		if (!cJSON_IsString(bank) ||
		    strcmp(bank->valuestring, "sha256") != 0) {
			snprintf(err, errlen,
			         "entry %d: bank must be \"sha256\" (the vault "
			         "bank)",
			         k);
			goto out;
		}
		if (!cJSON_IsNumber(idx) || idx->valuedouble < 0 ||
		    idx->valuedouble > 15 ||
		    idx->valuedouble != (double) (int) idx->valuedouble) {
			snprintf(err, errlen, "entry %d: index must be 0-15",
			         k);
			goto out;
		}
		i = (int) idx->valuedouble;
		if (*named & (1u << i)) {
			snprintf(err, errlen, "entry %d: PCR %d given twice", k,
			         i);
			goto out;
		}
		if (!cJSON_IsString(val) ||
		    unhex32(val->valuestring, out->v[i]) < 0) {
			snprintf(err, errlen,
			         "entry %d (PCR %d): value must be 64 hex "
			         "digits (sha256)",
			         k, i);
			goto out;
		}
		*named |= 1u << i;
		k++;
	}
	rc = 0;
out:
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
