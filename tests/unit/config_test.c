/* config_test.c: the deployment config parser: defaults, every rejection,
 * and the rule that a bad entry never takes the good ones down with it. */
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
#include "domainmgr.h"

#define U1 "11111111-2222-3333-4444-555555555501"
#define U2 "11111111-2222-3333-4444-555555555502"
#define U3 "11111111-2222-3333-4444-555555555503"

static struct dmcfg cfg;
static char         err[512];

static int
parse(const char *doc)
{
	dmcfg_free(&cfg);
	err[0] = '\0';
	return dmcfg_parse(doc, strlen(doc), &cfg, err, sizeof(err));
}

static int
teardown(void **state)
{
	(void) state;
	dmcfg_free(&cfg);
	return 0;
}

/* The single entry of doc is rejected with an error containing each of
 * the NULL-terminated needles. */
static void
rejected_with(const char *doc, ...)
{
	va_list     ap;
	const char *n;

	assert_int_equal(parse(doc), 0);
	assert_int_equal(cfg.napps, 1);
	assert_int_equal(cfg.nerrors, 1);
	assert_false(cfg.apps[0].valid);
	va_start(ap, doc);
	while ((n = va_arg(ap, const char *)) != NULL) {
		if (strstr(cfg.apps[0].error, n) == NULL) {
			fail_msg("error \"%s\" lacks \"%s\"", cfg.apps[0].error,
			         n);
		}
	}
	va_end(ap);
	assert_true(strlen(cfg.apps[0].detail) > 0);
	assert_non_null(strstr(cfg.apps[0].error, cfg.apps[0].detail));
}

static void
test_defaults(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":\"" U1 "\"}]}"), 0);
	assert_int_equal(cfg.napps, 1);
	assert_int_equal(cfg.nerrors, 0);
	assert_true(cfg.apps[0].valid);
	assert_string_equal(cfg.apps[0].uuid, U1);
	assert_string_equal(cfg.apps[0].name, "");
	assert_true(cfg.apps[0].activate);
	assert_true(cfg.apps[0].vtpm.enabled);
	assert_string_equal(cfg.apps[0].vtpm.version, "2.0");
	assert_int_equal(cfg.apps[0].vtpm.model, VTPM_MODEL_TIS);
	assert_int_equal(cfg.apps[0].vtpm.mode, VTPM_MODE_PERSISTENT);
	/* an empty vtpm object takes the same defaults */
	assert_int_equal(
	    parse("{\"apps\":[{\"uuid\":\"" U1 "\",\"vtpm\":{}}]}"), 0);
	assert_true(cfg.apps[0].valid);
	assert_true(cfg.apps[0].vtpm.enabled);
	assert_string_equal(cfg.apps[0].vtpm.version, "2.0");
}

static void
test_all_fields(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":\"" U1
	                       "\",\"name\":\"db\",\"activate\":false,"
	                       "\"vtpm\":{\"enabled\":true,\"version\":\"2.0\","
	                       "\"model\":\"crb\",\"mode\":\"ephemeral\"}}]}"),
	                 0);
	assert_true(cfg.apps[0].valid);
	assert_string_equal(cfg.apps[0].name, "db");
	assert_false(cfg.apps[0].activate);
	assert_int_equal(cfg.apps[0].vtpm.model, VTPM_MODEL_CRB);
	assert_int_equal(cfg.apps[0].vtpm.mode, VTPM_MODE_EPHEMERAL);
}

static void
test_bare_array_and_empty(void **state)
{
	(void) state;
	assert_int_equal(parse("[{\"uuid\":\"" U1 "\"},{\"uuid\":\"" U2 "\"}]"),
	                 0);
	assert_int_equal(cfg.napps, 2);
	assert_int_equal(cfg.nerrors, 0);
	assert_int_equal(parse("{\"apps\":[]}"), 0);
	assert_int_equal(cfg.napps, 0);
	assert_int_equal(parse("[]"), 0);
	assert_int_equal(cfg.napps, 0);
}

static void
test_tpm12_rejected(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"name\":\"legacy\",\"vtpm\":{\"version\":\"1.2\"}}]"
	              "}",
	              "app[0]", U1, "\"legacy\"", "vtpm.version",
	              "TPM 1.2 is not supported", NULL);
	/* the uuid and name survive, so the domain manager can show it */
	assert_string_equal(cfg.apps[0].uuid, U1);
	assert_string_equal(cfg.apps[0].name, "legacy");
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"version\":\"1.2\",\"model\":\"crb\"}}]}",
	              "vtpm.version", "crb requires TPM 2.0",
	              "1.2 is not supported", NULL);
}

static void
test_other_versions(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"version\":\"3.0\",\"model\":\"crb\"}}]}",
	              "vtpm.version", "crb requires version \"2.0\"", "\"3.0\"",
	              NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"version\":\"2\"}}]}",
	              "vtpm.version", "unsupported version \"2\"", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"version\":\"2.0.0.0.0\"}}]}",
	              "vtpm.version", "over its limit", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"version\":2.0}}]}",
	              "vtpm.version", "expected a string", NULL);
}

static void
test_disabled_ignores_version(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":\"" U1
	                       "\",\"vtpm\":{\"enabled\":false,\"version\":"
	                       "\"1.2\"}}]}"),
	                 0);
	assert_true(cfg.apps[0].valid);
	assert_false(cfg.apps[0].vtpm.enabled);
	/* but its types are still checked */
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"enabled\":false,\"model\":\"ftpm\"}}]}",
	              "vtpm.model", "unknown value \"ftpm\"", NULL);
}

static void
test_unknown_enums(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"name\":\"x\",\"vtpm\":{\"model\":\"spapr\"}}]}",
	              "app[0]", "\"x\"", "field vtpm.model",
	              "unknown value \"spapr\"", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"mode\":\"volatile\"}}]}",
	              "field vtpm.mode", "unknown value \"volatile\"", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"model\":\"TIS\"}}]}",
	              "field vtpm.model", NULL);
}

static void
test_bad_uuid(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"not-a-uuid\",\"name\":\"web\"}]}",
	              "app[0]", "not-a-uuid", "\"web\"", "field uuid",
	              "invalid UUID", NULL);
	assert_string_equal(cfg.apps[0].uuid, "");
	rejected_with("{\"apps\":[{\"uuid\":\"11111111-2222-3333-4444-"
	              "55555555550g\"}]}",
	              "field uuid", "invalid UUID", NULL);
	rejected_with("{\"apps\":[{\"name\":\"nouuid\"}]}", "app[0]",
	              "\"nouuid\"", "missing required field uuid", NULL);
	rejected_with("{\"apps\":[{\"uuid\":7}]}", "field uuid",
	              "expected a string", NULL);
}

static void
test_uuid_lower_case(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":"
	                       "\"AAAAAAAA-2222-3333-4444-55555555550F\"}]}"),
	                 0);
	assert_true(cfg.apps[0].valid);
	assert_string_equal(cfg.apps[0].uuid,
	                    "aaaaaaaa-2222-3333-4444-55555555550f");
}

static void
test_duplicates_all_rejected(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":\"" U1
	                       "\",\"name\":\"a\"},{\"uuid\":\"" U2
	                       "\"},{\"uuid\":\"" U1 "\",\"name\":\"b\"}]}"),
	                 0);
	assert_int_equal(cfg.napps, 3);
	assert_int_equal(cfg.nerrors, 2);
	assert_false(cfg.apps[0].valid);
	assert_true(cfg.apps[1].valid);
	assert_false(cfg.apps[2].valid);
	assert_non_null(strstr(cfg.apps[0].error, "duplicate uuid"));
	assert_non_null(strstr(cfg.apps[0].error, "app[0]"));
	assert_non_null(strstr(cfg.apps[2].error, "app[2]"));
	assert_non_null(strstr(cfg.apps[2].error, "listed 2 times"));
	assert_non_null(strstr(cfg.apps[2].error, "first at app[0]"));
	assert_null(dmcfg_find(&cfg, U1));
	assert_non_null(dmcfg_find(&cfg, U2));
	/* the same uuid in another case is the same VM */
	assert_int_equal(parse("[{\"uuid\":\"" U1 "\"},{\"uuid\":"
	                       "\"11111111-2222-3333-4444-555555555501\"},"
	                       "{\"uuid\":\"AAAAAAAA-2222-3333-4444-"
	                       "555555555501\"},{\"uuid\":\"aaaaaaaa-2222-3333-"
	                       "4444-555555555501\"}]"),
	                 0);
	assert_int_equal(cfg.nerrors, 4);
	/* a duplicate that is also invalid keeps its own error and is
	 * still rejected; its twin is rejected as a duplicate */
	assert_int_equal(parse("[{\"uuid\":\"" U1 "\",\"vtpm\":{\"version\":"
	                       "\"1.2\"}},{\"uuid\":\"" U1 "\"}]"),
	                 0);
	assert_int_equal(cfg.nerrors, 2);
	assert_non_null(strstr(cfg.apps[1].error, "duplicate"));
}

static void
test_unknown_fields(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"cpus\":2}]}", "app[0]",
	              U1, "unknown field cpus", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"modle\":\"crb\"}}]}",
	              "unknown field vtpm.modle", NULL);
	/* a typo must not become a silent default: activate vs activated */
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"activated\":false}]}",
	              "unknown field activated", NULL);
}

static void
test_wrong_types(void **state)
{
	(void) state;
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"activate\":\"no\"}]}",
	              "field activate", "expected true/false", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"activate\":0}]}",
	              "field activate", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"vtpm\":true}]}",
	              "field vtpm", "expected an object", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"vtpm\":{\"enabled\":\"yes\"}}]}",
	              "field vtpm.enabled", "expected true/false", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1 "\",\"name\":5}]}",
	              "field name", "expected a string", NULL);
	rejected_with("{\"apps\":[{\"uuid\":\"" U1
	              "\",\"name\":\"0123456789012345678901234567890123456789"
	              "0123456789012345678901234\"}]}",
	              "field name", "over its limit of 64", NULL);
	rejected_with("{\"apps\":[42]}", "app[0]", "expected an object", NULL);
	rejected_with("{\"apps\":[null]}", "app[0]", "expected an object",
	              NULL);
}

static void
test_rest_still_applies(void **state)
{
	(void) state;
	assert_int_equal(
	    parse("{\"apps\":["
	          "{\"uuid\":\"" U1 "\",\"name\":\"good1\"},"
	          "{\"uuid\":\"bad\",\"name\":\"badid\"},"
	          "{\"uuid\":\"" U2 "\",\"name\":\"good2\",\"vtpm\":{\"model\":"
	          "\"crb\"}},"
	          "{\"uuid\":\"11111111-2222-3333-4444-555555555509\","
	          "\"vtpm\":{\"version\":\"1.2\"}},"
	          "\"junk\","
	          "{\"uuid\":\"" U3 "\",\"name\":\"good3\",\"activate\":false}"
	          "]}"),
	    0);
	assert_int_equal(cfg.napps, 6);
	assert_int_equal(cfg.nerrors, 3);
	assert_true(cfg.apps[0].valid);
	assert_false(cfg.apps[1].valid);
	assert_true(cfg.apps[2].valid);
	assert_int_equal(cfg.apps[2].vtpm.model, VTPM_MODEL_CRB);
	assert_false(cfg.apps[3].valid);
	assert_non_null(strstr(cfg.apps[3].error, "app[3]"));
	assert_false(cfg.apps[4].valid);
	assert_non_null(strstr(cfg.apps[4].error, "app[4]"));
	assert_true(cfg.apps[5].valid);
	assert_false(cfg.apps[5].activate);
	assert_string_equal(dmcfg_find(&cfg, U3)->name, "good3");
}

static void
test_whole_file_errors(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\":[{\"uuid\":"), -1);
	assert_non_null(strstr(err, "not valid JSON"));
	assert_int_equal(parse("{\"apps\":[]}\n\ngarbage"), -1);
	assert_non_null(strstr(err, "line 3"));
	assert_int_equal(parse(""), -1);
	assert_non_null(strstr(err, "not valid JSON"));
	assert_int_equal(parse("{}"), -1);
	assert_non_null(strstr(err, "missing field \"apps\""));
	assert_int_equal(parse("{\"apps\":{}}"), -1);
	assert_non_null(strstr(err, "expected an array"));
	assert_int_equal(parse("{\"apps\":[],\"version\":2}"), -1);
	assert_non_null(strstr(err, "unknown top-level field \"version\""));
	assert_int_equal(parse("\"apps\""), -1);
	assert_non_null(strstr(err, "expected an object"));
	assert_int_equal(cfg.napps, 0);
}

static void
test_load_file(void **state)
{
	char        path[] = "/tmp/config-test.XXXXXX";
	int         fd = mkstemp(path);
	const char *doc = "{\"apps\":[{\"uuid\":\"" U1 "\"}]}";

	(void) state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t) strlen(doc));
	close(fd);
	dmcfg_free(&cfg);
	assert_int_equal(dmcfg_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.napps, 1);
	unlink(path);
	dmcfg_free(&cfg);
	assert_int_equal(dmcfg_load(path, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
}

static void
test_too_large(void **state)
{
	size_t len = DMCFG_MAX_BYTES + 1;
	char  *big = malloc(len);

	(void) state;
	assert_non_null(big);
	memset(big, ' ', len);
	dmcfg_free(&cfg);
	assert_int_equal(dmcfg_parse(big, len, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "over the limit"));
	free(big);
}

static void
test_example_file(void **state)
{
	(void) state;
	dmcfg_free(&cfg);
	if (dmcfg_load("examples/deployment.json", &cfg, err, sizeof(err)) <
	    0) {
		fail_msg("%s (run from the repository root)", err);
	}
	/* tis, crb, disabled, ephemeral, 1.2 (rejected), not activated */
	assert_int_equal(cfg.napps, 6);
	assert_int_equal(cfg.nerrors, 1);
	assert_int_equal(cfg.apps[1].vtpm.model, VTPM_MODEL_CRB);
	assert_false(cfg.apps[2].vtpm.enabled);
	assert_int_equal(cfg.apps[3].vtpm.mode, VTPM_MODE_EPHEMERAL);
	assert_false(cfg.apps[4].valid);
	assert_non_null(strstr(cfg.apps[4].error, "TPM 1.2"));
	assert_false(cfg.apps[5].activate);
}

/* vtpm.ek: "none" | "cert" (default) | "persist"; false/true still mean
 * none/cert; anything else is refused naming the field and the value. */
static void
test_vtpm_ek(void **state)
{
	(void) state;
	assert_int_equal(parse("{\"apps\": ["
	                       "{\"uuid\": \"" U1 "\", \"name\": \"a\"},"
	                       "{\"uuid\": \"" U2 "\", \"name\": \"b\","
	                       " \"vtpm\": {\"ek\": \"persist\"}},"
	                       "{\"uuid\": \"" U3 "\", \"name\": \"c\","
	                       " \"vtpm\": {\"ek\": false}}]}"),
	                 0);
	assert_int_equal(cfg.nerrors, 0);
	assert_int_equal(cfg.apps[0].vtpm.ek, VTPM_EK_CERT);
	assert_int_equal(cfg.apps[1].vtpm.ek, VTPM_EK_PERSIST);
	assert_int_equal(cfg.apps[2].vtpm.ek, VTPM_EK_NONE);
	assert_int_equal(parse("{\"apps\": [{\"uuid\": \"" U1
	                       "\", \"name\": \"a\", \"vtpm\": {\"ek\": "
	                       "true}}, {\"uuid\": \"" U2
	                       "\", \"name\": \"b\", \"vtpm\": {\"ek\": "
	                       "\"none\"}}]}"),
	                 0);
	assert_int_equal(cfg.apps[0].vtpm.ek, VTPM_EK_CERT);
	assert_int_equal(cfg.apps[1].vtpm.ek, VTPM_EK_NONE);
	rejected_with("{\"apps\": [{\"uuid\": \"" U1
	              "\", \"name\": \"a\", \"vtpm\": {\"ek\": "
	              "\"persistent\"}}]}",
	              "vtpm.ek", "unknown value \"persistent\"", NULL);
	rejected_with("{\"apps\": [{\"uuid\": \"" U1
	              "\", \"name\": \"a\", \"vtpm\": {\"ek\": 1}}]}",
	              "vtpm.ek", "expected a string", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_defaults, teardown),
	    cmocka_unit_test_teardown(test_all_fields, teardown),
	    cmocka_unit_test_teardown(test_bare_array_and_empty, teardown),
	    cmocka_unit_test_teardown(test_tpm12_rejected, teardown),
	    cmocka_unit_test_teardown(test_other_versions, teardown),
	    cmocka_unit_test_teardown(test_disabled_ignores_version, teardown),
	    cmocka_unit_test_teardown(test_unknown_enums, teardown),
	    cmocka_unit_test_teardown(test_bad_uuid, teardown),
	    cmocka_unit_test_teardown(test_uuid_lower_case, teardown),
	    cmocka_unit_test_teardown(test_duplicates_all_rejected, teardown),
	    cmocka_unit_test_teardown(test_unknown_fields, teardown),
	    cmocka_unit_test_teardown(test_wrong_types, teardown),
	    cmocka_unit_test_teardown(test_rest_still_applies, teardown),
	    cmocka_unit_test_teardown(test_whole_file_errors, teardown),
	    cmocka_unit_test_teardown(test_load_file, teardown),
	    cmocka_unit_test_teardown(test_too_large, teardown),
	    cmocka_unit_test_teardown(test_example_file, teardown),
	    cmocka_unit_test_teardown(test_vtpm_ek, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
