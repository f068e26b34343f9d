/*
 * predict.c: the pure logic of planned OS updates, no TPM: the
 * update agent's prediction file, PCR lists, the predicted set, which
 * policy branch the PCRs match, the boot decision (commit, keep, drop,
 * mismatch), update.json, and the test-only crash hook. Unit-tested in
 * tests/unit/update_test.c; update.c does the TPM side.
 */
#include "sealer.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
update_crash_point(const char *step)
{
	const char *want = getenv("VTPM_TEST_CRASH_AT");

	if (want != NULL && strcmp(want, step) == 0) {
		log_warnx("VTPM_TEST_CRASH_AT=%s: killing myself (test hook)",
		          step);
		raise(SIGKILL);
	}
}

int
update_predicted(uint32_t mask, uint32_t named, const struct pcr_values *given,
                 const uint8_t (*cur)[32], uint8_t (*out)[32], char     *err,
                 size_t errlen)
{
	char set[PCRS_LEN], extra[PCRS_LEN];

	if (named == 0) {
		snprintf(err, errlen, "the prediction names no PCR");
		return -1;
	}
	if (named & ~mask) {
		pcrset_format(named & ~mask, extra, sizeof(extra));
		pcrset_format(mask, set, sizeof(set));
		snprintf(err, errlen,
		         "predicted PCRs %s are not in the sealed set %s",
		         extra, set);
		return -1;
	}
	for (int i = 0; i < SEAL_PCR_MAX; i++) {
		if (mask & (1u << i)) {
			memcpy(out[i],
			       (named & (1u << i)) ? given->v[i] : cur[i], 32);
		}
	}
	return 0;
}

int
update_match(const struct seal_blob *b, const uint8_t (*now)[32])
{
	/* the predicted branch first: a prediction equal to the current
	 * values then simply commits */
	for (int k = b->nbranches - 1; k >= 0; k--) {
		const struct seal_branch *br = &b->branch[k];
		bool                      same = true;

		for (int i = 0; i < SEAL_PCR_MAX && same; i++) {
			if ((br->mask & (1u << i)) &&
			    memcmp(br->values[i], now[i], 32) != 0) {
				same = false;
			}
		}
		if (same) {
			return k;
		}
	}
	return -1;
}

enum update_action
update_decide(bool pending, int match, struct update_state *st,
              uint32_t reset_count, int pending_boots)
{
	if (!pending) {
		return UPD_NONE;
	}
	if (match == 1) {
		return UPD_COMMIT;
	}
	if (match != 0) {
		return UPD_MISMATCH;
	}
	/* old values: a boot is a new TPM resetCount (a broker restart
	 * without a reboot does not count) */
	if (reset_count != st->last_reset) {
		st->boots_seen++;
		st->last_reset = reset_count;
	}
	return st->boots_seen >= pending_boots ? UPD_DROP : UPD_KEEP;
}

/* update.json as update_state_store writes it */
struct update_file {
	int64_t version, boots_seen, last_reset, announced;
};

static const struct field update_file_fields[] = {
    FINT(struct update_file, version, FF_REQUIRED, 1, 1),
    FINT(struct update_file, boots_seen, FF_REQUIRED, 0, INT64_MAX),
    FINT(struct update_file, last_reset, FF_REQUIRED, 0, UINT32_MAX),
    FINT(struct update_file, announced, FF_REQUIRED, 0, INT64_MAX),
};
static const struct schema update_file_schema =
    SCHEMA("update state", MSG_NONE, struct update_file, update_file_fields);

int
update_state_load(const char *path, struct update_state *st, char *err,
                  size_t errlen)
{
	struct update_file f;

	memset(st, 0, sizeof(*st));
	if (schema_load_file(path, 4096, &update_file_schema, &f, err, errlen) <
	    0) {
		return -1;
	}
	st->boots_seen = f.boots_seen;
	st->last_reset = (uint32_t) f.last_reset;
	st->announced = f.announced;
	return 0;
}

int
update_state_store(const char *path, const struct update_state *st)
{
	struct update_file f = {.version = 1,
	                        .boots_seen = st->boots_seen,
	                        .last_reset = st->last_reset,
	                        .announced = st->announced};

	return schema_store_file(path, &update_file_schema, &f, 0600);
}
