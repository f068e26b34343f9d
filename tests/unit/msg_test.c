/* msg_test.c: the strict decoder rejects what it must, and round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

#define U1 "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

static int
decode(const char *json, enum msg_type expect, void *out, char *err)
{
	enum msg_type t;
	return msg_decode(json, strlen(json), expect, &t, out, err, 256);
}

static void
test_roundtrip_vtpm_status(void **state)
{
	struct vtpm_status in, out;
	char               err[256];
	char              *s;
	enum msg_type      t;

	(void) state;
	memset(&in, 0, sizeof(in));
	snprintf(in.uuid, sizeof(in.uuid), U1);
	snprintf(in.name, sizeof(in.name), "web \"1\"");
	in.state = VTPM_READY;
	in.model = VTPM_MODEL_CRB;
	in.mode = VTPM_MODE_EPHEMERAL;
	snprintf(in.ctrl_socket, sizeof(in.ctrl_socket), "/run/x.ctrl");
	in.pid = 4242;
	in.health = STATE_RESTORED;
	in.encrypted = true;
	s = msg_encode(MSG_VTPM_STATUS, &in);
	assert_non_null(s);
	assert_non_null(strstr(s, "\"type\":\"VtpmStatus\""));
	assert_non_null(strstr(s, "\"model\":\"crb\""));
	assert_null(strstr(s, "reason")); /* omitted when empty */
	assert_int_equal(msg_decode(s, strlen(s), MSG_VTPM_STATUS, &t, &out,
	                            err, sizeof(err)),
	                 0);
	assert_int_equal(t, MSG_VTPM_STATUS);
	assert_memory_equal(&in, &out, sizeof(in));
	free(s);
}

static void
test_defaults_and_nested(void **state)
{
	struct domain_status d;
	char                 err[256];

	(void) state;
	assert_int_equal(decode("{\"type\":\"DomainStatus\",\"version\":1,"
	                        "\"uuid\":\"" U1 "\",\"state\":\"BOOTING\"}",
	                        MSG_DOMAIN_STATUS, &d, err),
	                 0);
	assert_true(d.vtpm.enabled);
	assert_string_equal(d.vtpm.version, "2.0");
	assert_int_equal(d.vtpm.model, VTPM_MODEL_TIS);
	assert_int_equal(decode("{\"type\":\"DomainStatus\",\"version\":1,"
	                        "\"uuid\":\"" U1 "\",\"state\":\"BOOTING\","
	                        "\"vtpm\":{\"model\":\"crb\",\"bogus\":1}}",
	                        MSG_DOMAIN_STATUS, &d, err),
	                 -1);
	assert_string_equal(err, "unknown field vtpm.bogus");
}

struct reject_case {
	const char *json;
	const char *why; /* substring of the error */
};

static void
test_rejections(void **state)
{
	static const struct reject_case cases[] = {
	    {"{", "malformed JSON"},
	    {"[1]", "not a JSON object"},
	    {"{\"version\":1}", "type"},
	    {"{\"type\":\"Nope\",\"version\":1}", "unknown message type"},
	    {"{\"type\":\"KeyRelease\",\"version\":2,\"uuid\":\"" U1 "\"}",
	     "version"},
	    {"{\"type\":\"KeyRelease\",\"uuid\":\"" U1 "\"}", "version"},
	    {"{\"type\":\"KeyRelease\",\"version\":1}",
	     "missing required field uuid"},
	    {"{\"type\":\"KeyRelease\",\"version\":1,\"uuid\":\"nope\"}",
	     "invalid UUID"},
	    {"{\"type\":\"KeyRelease\",\"version\":1,\"uuid\":7}",
	     "expected a string"},
	    {"{\"type\":\"KeyRelease\",\"version\":1,\"uuid\":\"" U1
	     "\",\"x\":1}",
	     "unknown field x"},
	    {"{\"type\":\"GuardianRequest\",\"version\":1,\"uuid\":\"" U1
	     "\",\"op\":\"explode\"}",
	     "unknown value"},
	    {"{\"type\":\"GuardianRequest\",\"version\":1,\"uuid\":\"" U1
	     "\",\"op\":\"purge\",\"encrypted\":\"yes\"}",
	     "true/false"},
	    {"{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	     "\",\"state\":\"READY\",\"pid\":1.5}",
	     "not an integer"},
	    {"{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	     "\",\"state\":\"READY\",\"pid\":-1}",
	     "not an integer"},
	    /* found by the fuzzer: cJSON would print it back as 7.2e+15 */
	    {"{\"type\":\"GuardianReply\",\"version\":1,\"uuid\":\"" U1
	     "\",\"ok\":true,\"generation\":7224483091990491}",
	     "not an integer"},
	    {"{\"type\":\"KeyReleaseReply\",\"version\":1,\"uuid\":\"" U1
	     "\",\"status\":\"ok\",\"key\":\"abc\"}",
	     "hex digits"},
	};
	char buf[sizeof(struct guardian_rep) + sizeof(struct vtpm_status)];
	char err[256];

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0x5a, sizeof(buf));
		err[0] = '\0';
		assert_int_equal(decode(cases[i].json, MSG_NONE, buf, err), -1);
		if (strstr(err, cases[i].why) == NULL) {
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err,
			         cases[i].why);
		}
	}
}

static void
test_string_limit(void **state)
{
	struct vtpm_status v;
	char               json[1024], name[NAME_LEN + 1], err[256];

	(void) state;
	memset(name, 'a', sizeof(name) - 1);
	name[NAME_LEN - 1] = '\0'; /* exactly the limit: accepted */
	snprintf(json, sizeof(json),
	         "{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	         "\",\"state\":\"READY\",\"name\":\"%s\"}",
	         name);
	assert_int_equal(decode(json, MSG_VTPM_STATUS, &v, err), 0);
	name[NAME_LEN - 1] = 'a';
	name[NAME_LEN] = '\0'; /* one over */
	snprintf(json, sizeof(json),
	         "{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	         "\",\"state\":\"READY\",\"name\":\"%s\"}",
	         name);
	assert_int_equal(decode(json, MSG_VTPM_STATUS, &v, err), -1);
	assert_non_null(strstr(err, "over its limit"));
}

static void
test_oversize_and_wrong_type(void **state)
{
	struct key_release_req r;
	enum msg_type          t;
	char                   err[256];
	size_t                 n = MSG_MAX + 1;
	char                  *big = malloc(n);

	(void) state;
	memset(big, ' ', n);
	assert_int_equal(msg_decode(big, n, MSG_NONE, &t, &r, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "over the"));
	free(big);
	assert_int_equal(decode("{\"type\":\"KeyRelease\",\"version\":1,"
	                        "\"uuid\":\"" U1 "\"}",
	                        MSG_GUARDIAN_REQ, &r, err),
	                 -1);
	assert_non_null(strstr(err, "unexpected message type"));
}

/* A NUL in any string, raw or as the escape \u0000, is refused: cJSON
 * would hand the string out cut at the NUL ("AttestRequest\u0000y" would
 * read as "AttestRequest"). */
static void
test_nul_in_strings(void **state)
{
	static const char *cases[] = {
	    "{\"type\":\"AttestRequest\\u0000y\",\"version\":1,\"op\":\"info\","
	    "\"uuid\":\"" U1 "\"}",
	    "{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	    "\",\"state\":\"READY\",\"name\":\"a\\u0000b\"}",
	    "{\"type\":\"VtpmStatus\",\"version\":1,\"uuid\":\"" U1
	    "\",\"state\\u0000x\":\"READY\"}",
	};
	static const char raw[] = "{\"type\":\"VtpmStatus\",\"version\":1,"
	                          "\"uuid\":\"" U1 "\",\"state\":\"READY\","
	                          "\"name\":\"a\0b\"}";
	size_t            max = msg_max_size();
	unsigned char    *out = malloc(max);
	enum msg_type     t;
	char              err[256];

	(void) state;
	assert_non_null(out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(decode(cases[i], MSG_NONE, out, err), -1);
		if (strstr(err, "NUL") == NULL) {
			fail_msg("case %zu: error \"%s\" lacks \"NUL\"", i,
			         err);
		}
	}
	err[0] = '\0';
	assert_int_equal(msg_decode(raw, sizeof(raw) - 1, MSG_NONE, &t, out,
	                            err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "NUL"));
	/* an escaped backslash before "u0000" is text, not a NUL */
	assert_int_equal(decode("{\"type\":\"VtpmStatus\",\"version\":1,"
	                        "\"uuid\":\"" U1 "\",\"state\":\"READY\","
	                        "\"name\":\"a\\\\u0000\"}",
	                        MSG_VTPM_STATUS, out, err),
	                 0);
	assert_string_equal(((struct vtpm_status *) out)->name, "a\\u0000");
	free(out);
	/* topic envelopes and snapshots are parsed the same way */
	const char *top = "{\"topic\":\"VtpmStatus\\u0000\"}";
	const char *esc = "{\"a\":\"\\\\u0000\"}";
	cJSON      *ok;

	assert_null(msg_json_parse(top, strlen(top), err, sizeof(err)));
	assert_non_null(strstr(err, "NUL character at byte 20"));
	assert_null(msg_json_parse("{\"a\":", 5, err, sizeof(err)));
	assert_non_null(strstr(err, "malformed JSON"));
	ok = msg_json_parse(esc, strlen(esc), err, sizeof(err));
	assert_non_null(ok);
	cJSON_Delete(ok);
}

/* The largest struct of the table: what a decoder of any type needs. */
static void
test_max_size(void **state)
{
	size_t max = msg_max_size();

	(void) state;
	for (int t = MSG_NONE + 1; t < MSG_TYPE_COUNT; t++) {
		if (msg_schema((enum msg_type) t) != NULL) {
			assert_true(msg_schema((enum msg_type) t)->size <= max);
		}
	}
	assert_true(max >= sizeof(struct attest_req));
	assert_true(max >= sizeof(struct attest_rep));
	assert_true(max >= sizeof(struct vtpm_status));
}

static void
test_secret_roundtrip(void **state)
{
	struct key_release_rep in, out;
	enum msg_type          t;
	char                   err[256];
	char                  *s;

	(void) state;
	memset(&in, 0, sizeof(in));
	snprintf(in.uuid, sizeof(in.uuid), U1);
	in.status = KEY_OK;
	for (int i = 0; i < KEY_LEN; i++) {
		in.key[i] = (uint8_t) (i * 7 + 1);
	}
	s = msg_encode(MSG_KEY_RELEASE_REP, &in);
	assert_non_null(s);
	assert_int_equal(msg_decode(s, strlen(s), MSG_KEY_RELEASE_REP, &t, &out,
	                            err, sizeof(err)),
	                 0);
	assert_memory_equal(in.key, out.key, KEY_LEN);
	msg_free_wipe(s);
	/* an error reply carries no key at all */
	in.status = KEY_POLICY_MISMATCH;
	memset(in.key, 0, sizeof(in.key));
	s = msg_encode(MSG_KEY_RELEASE_REP, &in);
	assert_null(strstr(s, "\"key\""));
	msg_free_wipe(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_vtpm_status),
	    cmocka_unit_test(test_defaults_and_nested),
	    cmocka_unit_test(test_rejections),
	    cmocka_unit_test(test_string_limit),
	    cmocka_unit_test(test_oversize_and_wrong_type),
	    cmocka_unit_test(test_secret_roundtrip),
	    cmocka_unit_test(test_nul_in_strings),
	    cmocka_unit_test(test_max_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
