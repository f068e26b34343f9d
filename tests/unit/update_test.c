/* update_test.c: the pure logic of planned OS updates (pkg/sealer/
 * update.c): the prediction file, the PCR list, filling the predicted set,
 * which branch matches, the boot decision (commit, keep, drop, mismatch),
 * the update.json round trip, and the KeyAdmin messages on the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "sealer.h"
#include "vtpmctl.h"

#include <openssl/pem.h>

#define H8 "8888888888888888888888888888888888888888888888888888888888888888"
#define H9 "9999999999999999999999999999999999999999999999999999999999999999"

static int
parse(const char *s, struct pcr_values *v, uint32_t *named, char *err)
{
	return pcrset_parse_prediction(s, strlen(s), v, named, err, 256);
}

static void
test_parse_prediction(void **state)
{
	struct pcr_values v;
	uint32_t          named;
	char              err[256];

	(void) state;
	assert_int_equal(
	    parse("[{\"bank\":\"sha256\",\"index\":8,\"value\":\"" H8
	          "\"},{\"bank\":\"sha256\",\"index\":9,"
	          "\"value\":\"" H9 "\"}]",
	          &v, &named, err),
	    0);
	assert_int_equal(named, (1u << 8) | (1u << 9));
	assert_int_equal(v.v[8][0], 0x88);
	assert_int_equal(v.v[9][31], 0x99);
	assert_int_equal(v.v[0][0], 0);
	/* the object form */
	assert_int_equal(parse("{\"predicted\":[{\"bank\":\"sha256\",\"index\":"
	                       "14,\"value\":\"" H8 "\"}]}",
	                       &v, &named, err),
	                 0);
	assert_int_equal(named, 1u << 14);
	/* refusals, each with its reason */
	assert_int_equal(parse("nope", &v, &named, err), -1);
	assert_non_null(strstr(err, "not JSON"));
	assert_int_equal(parse("[]", &v, &named, err), -1);
	assert_int_equal(parse("[{\"bank\":\"sha1\",\"index\":8,\"value\":\"" H8
	                       "\"}]",
	                       &v, &named, err),
	                 -1);
	assert_non_null(
	    strstr(err, "field predicted[0].bank: unknown value \"sha1\""));
	assert_int_equal(parse("[{\"bank\":\"sha256\",\"index\":16,\"value\":"
	                       "\"" H8 "\"}]",
	                       &v, &named, err),
	                 -1);
	assert_non_null(strstr(
	    err, "field predicted[0].index: 16 is not an integer in [0, 15]"));
	assert_int_equal(parse("[{\"bank\":\"sha256\",\"index\":8.5,\"value\":"
	                       "\"" H8 "\"}]",
	                       &v, &named, err),
	                 -1);
	assert_int_equal(parse("[{\"bank\":\"sha256\",\"index\":8,\"value\":"
	                       "\"abc\"}]",
	                       &v, &named, err),
	                 -1);
	assert_non_null(strstr(err, "64 hex"));
	assert_int_equal(
	    parse("[{\"bank\":\"sha256\",\"index\":8,\"value\":\"" H8
	          "\"},{\"bank\":\"sha256\",\"index\":8,"
	          "\"value\":\"" H9 "\"}]",
	          &v, &named, err),
	    -1);
	assert_non_null(
	    strstr(err, "field predicted[1].index: PCR 8 given twice"));
	/* a missing field, an unknown one, a wrong type, bad hex, too many */
	assert_int_equal(parse("[{\"bank\":\"sha256\",\"value\":\"" H8 "\"}]",
	                       &v, &named, err),
	                 -1);
	assert_non_null(
	    strstr(err, "missing required field predicted[0].index"));
	assert_int_equal(
	    parse("[{\"bank\":\"sha256\",\"index\":8,\"value\":\"" H8
	          "\",\"note\":\"x\"}]",
	          &v, &named, err),
	    -1);
	assert_non_null(strstr(err, "unknown field predicted[0].note"));
	assert_int_equal(
	    parse("[{\"bank\":\"sha256\",\"index\":\"8\",\"value\":"
	          "\"" H8 "\"}]",
	          &v, &named, err),
	    -1);
	assert_non_null(
	    strstr(err, "field predicted[0].index: expected a number"));
	assert_int_equal(
	    parse("[{\"bank\":\"sha256\",\"index\":8,\"value\":\"+f"
	          "88888888888888888888888888888888888888888888888888"
	          "888888888888\"}]",
	          &v, &named, err),
	    -1);
	assert_non_null(
	    strstr(err, "field predicted[0].value: not a hex digit"));
	{
		char big[4096];
		int  n = snprintf(big, sizeof(big), "[");

		for (int i = 0; i < 17; i++) {
			n += snprintf(big + n, sizeof(big) - (size_t) n,
			              "%s{\"bank\":\"sha256\",\"index\":%d,"
			              "\"value\":\"" H8 "\"}",
			              i ? "," : "", i % 16);
		}
		snprintf(big + n, sizeof(big) - (size_t) n, "]");
		assert_int_equal(parse(big, &v, &named, err), -1);
		assert_non_null(strstr(
		    err, "field predicted: 17 elements, expected 1 to 16"));
	}
	assert_int_equal(parse("{\"predicted\":{}}", &v, &named, err), -1);
	assert_non_null(strstr(err, "field predicted: expected an array"));
	assert_int_equal(named, 0);
}

static void
test_pcrlist(void **state)
{
	uint32_t m;

	(void) state;
	assert_int_equal(pcrset_list_parse("8,9,13,14", &m), 0);
	assert_int_equal(m, (1u << 8) | (1u << 9) | (1u << 13) | (1u << 14));
	assert_int_equal(pcrset_list_parse("", &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(pcrset_list_parse("5", &m), 0); /* no 0/5 rule */
	assert_int_equal(pcrset_list_parse("16", &m), -1);
	assert_int_equal(pcrset_list_parse("8,8", &m), -1);
	assert_int_equal(pcrset_list_parse("8,", &m), -1);
	assert_int_equal(pcrset_list_parse("x", &m), -1);
}

static void
test_predicted(void **state)
{
	struct pcr_values given;
	uint8_t           cur[SEAL_PCR_MAX][32], out[SEAL_PCR_MAX][32];
	uint32_t          mask;
	char              err[256];

	(void) state;
	assert_int_equal(
	    pcrset_parse(SEAL_DEFAULT_PCRS, &mask, err, sizeof(err)), 0);
	memset(&given, 0xaa, sizeof(given));
	memset(cur, 0x11, sizeof(cur));
	memset(out, 0, sizeof(out));
	assert_int_equal(update_predicted(mask, 1u << 8, &given,
	                                  (const uint8_t(*)[32]) cur, out, err,
	                                  sizeof(err)),
	                 0);
	assert_int_equal(out[8][0], 0xaa); /* named: predicted */
	assert_int_equal(out[0][0], 0x11); /* not named: unchanged */
	assert_int_equal(out[5][0], 0);    /* not in the set: untouched */
	/* PCR 5 is not sealed to */
	assert_int_equal(update_predicted(mask, 1u << 5, &given,
	                                  (const uint8_t(*)[32]) cur, out, err,
	                                  sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "not in the sealed set"));
	assert_int_equal(update_predicted(mask, 0, &given,
	                                  (const uint8_t(*)[32]) cur, out, err,
	                                  sizeof(err)),
	                 -1);
}

static void
test_match(void **state)
{
	struct seal_blob b;
	uint8_t          now[SEAL_PCR_MAX][32];

	(void) state;
	memset(&b, 0, sizeof(b));
	b.mask = 0x3; /* PCRs 0, 1 */
	b.nbranches = 2;
	b.branch[0].mask = b.branch[1].mask = 0x3;
	memset(b.branch[0].values, 0x00, sizeof(b.branch[0].values));
	memset(b.branch[1].values, 0x00, sizeof(b.branch[1].values));
	b.branch[1].values[1][0] = 0x42;
	memset(now, 0, sizeof(now));
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), 0);
	now[1][0] = 0x42;
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), 1);
	now[0][5] = 1;
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), -1);
	/* PCRs outside the set do not matter */
	now[0][5] = 0;
	now[7][0] = 9;
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), 1);
	/* equal branches: the predicted one wins (it commits) */
	b.branch[0].values[1][0] = 0x42;
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), 1);
	b.nbranches = 1;
	assert_int_equal(update_match(&b, (const uint8_t(*)[32]) now), 0);
}

static void
test_decide(void **state)
{
	struct update_state st = {.boots_seen = 0, .last_reset = 7};

	(void) state;
	assert_int_equal(update_decide(false, 0, &st, 8, 2), UPD_NONE);
	assert_int_equal(update_decide(true, 1, &st, 8, 2), UPD_COMMIT);
	assert_int_equal(st.boots_seen, 0);
	assert_int_equal(update_decide(true, -1, &st, 8, 2), UPD_MISMATCH);
	assert_int_equal(st.boots_seen, 0); /* a mismatch is not counted */
	/* same resetCount: a broker restart, not a boot */
	assert_int_equal(update_decide(true, 0, &st, 7, 2), UPD_KEEP);
	assert_int_equal(st.boots_seen, 0);
	assert_int_equal(update_decide(true, 0, &st, 8, 2), UPD_KEEP);
	assert_int_equal(st.boots_seen, 1);
	assert_int_equal(st.last_reset, 8);
	assert_int_equal(update_decide(true, 0, &st, 8, 2), UPD_KEEP);
	assert_int_equal(update_decide(true, 0, &st, 9, 2), UPD_DROP);
	assert_int_equal(st.boots_seen, 2);
	/* after a rollback boot, the new image still commits */
	st.boots_seen = 1;
	assert_int_equal(update_decide(true, 1, &st, 10, 2), UPD_COMMIT);
}

static int
load_state(const char *path, char *err, size_t errlen)
{
	struct update_state st;

	return update_state_load(path, &st, err, errlen);
}

static int
load_escrow(const char *path, char *err, size_t errlen)
{
	struct escrow_file ef;
	int                rc = escrow_file_load(path, &ef, err, errlen);

	assert_int_equal(ef.wlen, 0); /* nothing half-decoded on error */
	return rc;
}

/* write txt to path; load must refuse it, naming the file and saying why */
static void
file_bad(int (*load)(const char *, char *, size_t), const char *path,
         const char *txt, const char *why)
{
	char  err[256];
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(txt, f);
	fclose(f);
	assert_int_equal(load(path, err, sizeof(err)), -1);
	assert_memory_equal(err, path, strlen(path));
	if (strstr(err, why) == NULL) {
		fail_msg("\"%s\" does not say \"%s\"", err, why);
	}
}

static void
test_state_file(void **state)
{
	struct update_state a = {.boots_seen = 3,
	                         .last_reset = 4000000000u,
	                         .announced = 1764600000},
	                    b;
	char path[] = "/tmp/update-test.XXXXXX", err[256];
	int  fd = mkstemp(path);

	(void) state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(update_state_store(path, &a), 0);
	assert_int_equal(update_state_load(path, &b, err, sizeof(err)), 0);
	assert_int_equal(b.boots_seen, 3);
	assert_int_equal(b.last_reset, 4000000000u);
	assert_int_equal(b.announced, 1764600000);
	unlink(path);
	assert_int_equal(update_state_load(path, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	/* malformed files: refused with the path, the field and the reason */
	file_bad(load_state, path,
	         "{\"version\":1,\"boots_seen\":1,\"announced\":5}",
	         "missing required field last_reset");
	file_bad(load_state, path,
	         "{\"version\":1,\"boots_seen\":\"1\",\"last_reset\":0,"
	         "\"announced\":5}",
	         "field boots_seen: expected a number");
	file_bad(load_state, path,
	         "{\"version\":1,\"boots_seen\":1,\"last_reset\":4294967296,"
	         "\"announced\":5}",
	         "field last_reset: 4.29497e+09 is not an integer in [0, "
	         "4294967295]");
	file_bad(load_state, path,
	         "{\"version\":1,\"boots_seen\":-1,\"last_reset\":0,"
	         "\"announced\":5}",
	         "field boots_seen: -1 is not an integer");
	file_bad(load_state, path,
	         "{\"version\":2,\"boots_seen\":1,\"last_reset\":0,"
	         "\"announced\":5}",
	         "field version: 2 is not an integer in [1, 1]");
	file_bad(load_state, path,
	         "{\"version\":1,\"boots_seen\":1,\"last_reset\":0,"
	         "\"announced\":5,\"boot\":1}",
	         "unknown field boot");
	file_bad(load_state, path, "{\"version\":1,", "not JSON");
	{
		char big[5000];

		memset(big, ' ', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		file_bad(load_state, path, big, "larger than 4096 bytes");
	}
	unlink(path);
}

static void
test_wire(void **state)
{
	struct key_admin_req rq, back;
	struct key_admin_rep rp, rback;
	enum msg_type        t;
	char                 err[256], *s;

	(void) state;
	memset(&rq, 0, sizeof(rq));
	rq.op = KOP_ANNOUNCE;
	snprintf(rq.pcrs, sizeof(rq.pcrs), "8,9");
	memset(rq.values.v[8], 0x88, 32);
	memset(rq.values.v[9], 0x99, 32);
	assert_non_null(s = msg_encode(MSG_KEY_ADMIN_REQ, &rq));
	assert_non_null(strstr(s, "\"announce\""));
	assert_non_null(strstr(s, "\"8\""));
	assert_null(strstr(s, "\"0\":")); /* zero values are omitted */
	assert_int_equal(msg_decode(s, strlen(s), MSG_KEY_ADMIN_REQ, &t, &back,
	                            err, sizeof(err)),
	                 0);
	assert_memory_equal(&rq, &back, sizeof(rq));
	free(s);

	memset(&rp, 0, sizeof(rp));
	rp.status = KEY_POLICY_MISMATCH;
	rp.branches = 2;
	rp.matches = -1;
	rp.pending = true;
	rp.boots_seen = 1;
	rp.pending_boots = 3;
	memset(rp.digest0, 1, 32);
	memset(rp.digest1, 2, 32);
	snprintf(rp.pcrs, sizeof(rp.pcrs), "0,1,2");
	assert_non_null(s = msg_encode(MSG_KEY_ADMIN_REP, &rp));
	assert_int_equal(msg_decode(s, strlen(s), MSG_KEY_ADMIN_REP, &t, &rback,
	                            err, sizeof(err)),
	                 0);
	assert_memory_equal(&rp, &rback, sizeof(rp));
	free(s);
	/* an unknown op is refused at the boundary */
	s = "{\"type\":\"KeyAdmin\",\"version\":1,\"op\":\"format-disk\"}";
	assert_int_equal(msg_decode(s, strlen(s), MSG_KEY_ADMIN_REQ, &t, &back,
	                            err, sizeof(err)),
	                 -1);
	/* unused numbers have no schema */
	assert_null(msg_schema((enum msg_type) 19));
	assert_null(msg_schema_by_name("nope"));
}

static void
test_crash_hook(void **state)
{
	(void) state;
	unsetenv("VTPM_TEST_CRASH_AT");
	update_crash_point("announce-sealed"); /* no hook: returns */
	setenv("VTPM_TEST_CRASH_AT", "elsewhere", 1);
	update_crash_point("announce-sealed"); /* another step: returns */
	unsetenv("VTPM_TEST_CRASH_AT");
}

/* ---- escrow helpers (escrow.c) ---- */

static void
write_pub(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
}

static void
test_escrow_wrap(void **state)
{
	EVP_PKEY          *k = EVP_RSA_gen(2048), *other = EVP_RSA_gen(2048);
	EVP_PKEY          *loaded = NULL, *small;
	uint8_t            master[SEAL_MASTER_LEN], back[SEAL_MASTER_LEN];
	uint8_t            w[ESCROW_WRAP_MAX];
	size_t             wlen;
	char               fp[65], fp2[65], id[65], id2[65], err[256];
	char               path[] = "/tmp/escrow-test.XXXXXX";
	struct escrow_file ef, eb;
	int                fd = mkstemp(path);

	(void) state;
	assert_non_null(k);
	assert_non_null(other);
	assert_true(fd >= 0);
	close(fd);
	for (int i = 0; i < SEAL_MASTER_LEN; i++) {
		master[i] = (uint8_t) (i * 7 + 1);
	}
	/* wrap to the public half, unwrap with the private one */
	write_pub(path, k);
	assert_int_equal(
	    escrow_load_pubkey(path, &loaded, fp, err, sizeof(err)), 0);
	assert_int_equal(strlen(fp), 64);
	assert_int_equal(escrow_fingerprint(k, fp2), 0);
	assert_string_equal(fp, fp2);
	assert_int_equal(
	    escrow_wrap(loaded, master, sizeof(master), w, sizeof(w), &wlen),
	    0);
	assert_int_equal(wlen, 256);
	EVP_PKEY_free(loaded);
	loaded = NULL;
	assert_int_equal(escrow_unwrap(k, w, wlen, back), 0);
	assert_memory_equal(master, back, sizeof(master));
	/* another key cannot unwrap it; a flipped bit is refused */
	assert_int_equal(escrow_unwrap(other, w, wlen, back), -1);
	w[10] ^= 1;
	assert_int_equal(escrow_unwrap(k, w, wlen, back), -1);
	w[10] ^= 1;
	/* master id: deterministic, depends on the key, is not the key */
	assert_int_equal(escrow_master_id(master, id), 0);
	assert_int_equal(escrow_master_id(master, id2), 0);
	assert_string_equal(id, id2);
	back[0] ^= 1;
	assert_int_equal(escrow_master_id(back, id2), 0);
	assert_string_not_equal(id, id2);
	/* the record round trip */
	memset(&ef, 0, sizeof(ef));
	memcpy(ef.key_fp, fp, 65);
	memcpy(ef.master_id, id, 65);
	memcpy(ef.wrapped, w, wlen);
	ef.wlen = wlen;
	assert_int_equal(escrow_file_store(path, &ef), 0);
	assert_int_equal(escrow_file_load(path, &eb, err, sizeof(err)), 0);
	assert_string_equal(eb.key_fp, fp);
	assert_string_equal(eb.master_id, id);
	assert_int_equal(eb.wlen, wlen);
	assert_memory_equal(eb.wrapped, w, wlen);
	/* not a public key / too small a key: refused with the path */
	assert_int_equal(
	    escrow_load_pubkey(path, &loaded, fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	small = EVP_RSA_gen(1024);
	write_pub(path, small);
	assert_int_equal(
	    escrow_load_pubkey(path, &loaded, fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2048"));
	EVP_PKEY_free(small);
	/* malformed records: refused with the path, the field, the reason */
#define EK "\"controller_key\":\"" H8 "\""
#define EM "\"master_id\":\"" H9 "\""
	file_bad(load_escrow, path,
	         "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\"," EK "," EM
	         ",\"wrapped\":\"0a0\"}",
	         "field wrapped: not an even run of hex digits");
	file_bad(load_escrow, path,
	         "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\"," EK "," EM "}",
	         "missing required field wrapped");
	file_bad(load_escrow, path,
	         "{\"version\":1,\"alg\":\"RSA-PKCS1\"," EK "," EM
	         ",\"wrapped\":\"0a\"}",
	         "field alg: unknown value \"RSA-PKCS1\"");
	file_bad(
	    load_escrow, path,
	    "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\",\"controller_key\":"
	    "\"+f" H8 "\"," EM ",\"wrapped\":\"0a\"}",
	    "field controller_key: expected 64 hex digits");
	file_bad(
	    load_escrow, path,
	    "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\",\"controller_key\":"
	    "\" f888888888888888888888888888888"
	    "88888888888888888888888888888888\"," EM ",\"wrapped\":\"0a\"}",
	    "field controller_key: not a hex digit");
	file_bad(load_escrow, path,
	         "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\"," EK
	         ",\"master_id\":64,\"wrapped\":\"0a\"}",
	         "field master_id: expected 64 hex digits");
	{
		char big[2 * ESCROW_WRAP_MAX + 400];
		int  n =
		    snprintf(big, sizeof(big),
		             "{\"version\":1,\"alg\":\"RSA-OAEP-SHA256\"," EK
		             "," EM ",\"wrapped\":\"");

		memset(big + n, 'a', 2 * ESCROW_WRAP_MAX + 2);
		snprintf(big + n + 2 * ESCROW_WRAP_MAX + 2,
		         sizeof(big) - (size_t) n - 2 * ESCROW_WRAP_MAX - 2,
		         "\"}");
		file_bad(load_escrow, path, big,
		         "field wrapped: 1026 hex digits, expected 2 to 1024");
	}
#undef EK
#undef EM
	unlink(path);
	assert_int_equal(escrow_file_load(path, &eb, err, sizeof(err)), -1);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void
test_escrow_unhex(void **state)
{
	uint8_t b[4];
	size_t  n;

	(void) state;
	assert_int_equal(escrow_unhex("0aff\n", b, sizeof(b), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(b[1], 0xff);
	assert_int_equal(escrow_unhex("abc", b, sizeof(b), &n), -1);
	assert_int_equal(escrow_unhex("0011223344", b, sizeof(b), &n), -1);
	assert_int_equal(escrow_unhex("zz", b, sizeof(b), &n), -1);
}

/* vtpmctl keys status, in words */
static void
test_keys_print(void **state)
{
	struct key_admin_rep r;
	char                *buf = NULL;
	size_t               len = 0;
	FILE                *f;

	(void) state;
	memset(&r, 0, sizeof(r));
	r.status = KEY_POLICY_MISMATCH;
	snprintf(r.reason, sizeof(r.reason), "the PCRs match no branch");
	snprintf(r.pcrs, sizeof(r.pcrs), "0,8");
	snprintf(r.changed_pcrs, sizeof(r.changed_pcrs), "8");
	r.branches = 2;
	r.matches = -1;
	r.pending = true;
	r.boots_seen = 1;
	r.pending_boots = 3;
	r.escrow = ESCROW_STORED;
	memset(r.digest1, 0xab, 32);
	assert_non_null(f = open_memstream(&buf, &len));
	assert_int_equal(vctl_keys_print(&r, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "key broker: policy-mismatch: the PCRs"));
	assert_non_null(strstr(buf, "PCRs 0,8, 2 branches (PolicyOR)"));
	assert_non_null(strstr(buf, "branch 1 (predicted): abab"));
	assert_non_null(strstr(buf, "match: no branch; changed: 8"));
	assert_non_null(strstr(buf, "pending update: yes (boots on the old "
	                            "image 1 of 3)"));
	assert_non_null(strstr(buf, "escrow: stored"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_prediction),
	    cmocka_unit_test(test_pcrlist),
	    cmocka_unit_test(test_predicted),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_state_file),
	    cmocka_unit_test(test_wire),
	    cmocka_unit_test(test_crash_hook),
	    cmocka_unit_test(test_escrow_wrap),
	    cmocka_unit_test(test_escrow_unhex),
	    cmocka_unit_test(test_keys_print),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
