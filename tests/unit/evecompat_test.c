/* evecompat_test.c: the EVE API's request parser: EVE's order of checks
 * (path, then method, then id), every id form Go's uuid.FromString takes,
 * and each rejection with its status and reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common.h"
#include "evecompat.h"

#define ID "7e000000-0000-4000-8000-0000000000ab"

static struct eve_req req;
static char           err[REASON_LEN];

static int
parse1(const char *method, const char *path, const char *id)
{
	struct eve_arg a = {"id", id};

	err[0] = '\0';
	return eve_req_parse(method, path, &a, 1, &req, err, sizeof(err));
}

static void
test_ops(void **s)
{
	(void) s;
	assert_int_equal(parse1("GET", "/launch", ID), 0);
	assert_int_equal(req.op, EVE_LAUNCH);
	assert_string_equal(req.uuid, ID);
	assert_int_equal(parse1("GET", "/terminate", ID), 0);
	assert_int_equal(req.op, EVE_TERMINATE);
	assert_int_equal(parse1("GET", "/purge", ID), 0);
	assert_int_equal(req.op, EVE_PURGE);
}

static void
test_id_forms(void **s)
{
	static const char *const forms[] = {
	    "7E000000-0000-4000-8000-0000000000AB",
	    "7e0000000000400080000000000000ab",
	    "{7e000000-0000-4000-8000-0000000000ab}",
	    "urn:uuid:7e000000-0000-4000-8000-0000000000ab"};

	(void) s;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		assert_int_equal(parse1("GET", "/launch", forms[i]), 0);
		assert_string_equal(req.uuid, ID); /* canonical, lower case */
	}
}

static void
test_rejects(void **s)
{
	struct eve_arg two[2] = {{"id", ID}, {"id", ID}};
	struct eve_arg other = {"uuid", ID};

	(void) s;
	/* the path decides first: an unknown path is 404 for any method */
	assert_int_equal(parse1("POST", "/status", ID), 404);
	assert_string_equal(err, "404 page not found");
	assert_int_equal(parse1("GET", "/launch/", ID), 404);
	assert_int_equal(parse1("GET", NULL, ID), 404);
	/* then the method, before the id */
	assert_int_equal(parse1("POST", "/launch", "junk"), 405);
	assert_string_equal(err, "Method POST not allowed");
	assert_int_equal(parse1("HEAD", "/purge", ID), 405);
	/* then the id */
	assert_int_equal(parse1("GET", "/launch", "junk"), 400);
	assert_string_equal(
	    err, "vTPM launch request failed, id \"junk\" is invalid");
	assert_int_equal(parse1("GET", "/launch", NULL), 400);
	assert_int_equal(parse1("GET", "/launch", ""), 400);
	assert_int_equal(
	    parse1("GET", "/launch", "00000000-0000-0000-0000-000000000000"),
	    400);
	assert_int_equal(
	    parse1("GET", "/launch", "7e000000-0000-4000-8000-0000000000ag"),
	    400);
	assert_int_equal(
	    parse1("GET", "/launch", "7e000000-0000-4000-8000+0000000000ab"),
	    400);
	assert_int_equal(parse1("GET", "/launch", "{" ID), 400);
	assert_int_equal(parse1("GET", "/terminate", "\x01\x02"), 400);
	assert_non_null(strstr(err, "\"??\""));
	assert_int_equal(
	    eve_req_parse("GET", "/launch", two, 2, &req, err, sizeof(err)),
	    400);
	assert_non_null(strstr(err, "id given 2 times"));
	assert_int_equal(
	    eve_req_parse("GET", "/launch", &other, 1, &req, err, sizeof(err)),
	    400);
	assert_int_equal(
	    eve_req_parse("GET", "/launch", NULL, 0, &req, err, sizeof(err)),
	    400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ops),
	    cmocka_unit_test(test_id_forms),
	    cmocka_unit_test(test_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
