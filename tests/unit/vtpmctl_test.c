/* vtpmctl_test.c: the status join (DomainStatus x VtpmStatus), the state
 * column for VMs the launcher does not know, and both output formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmctl.h"

#define U1 "11111111-2222-3333-4444-555555555501"
#define U2 "11111111-2222-3333-4444-555555555502"
#define U3 "11111111-2222-3333-4444-555555555503"
#define U4 "11111111-2222-3333-4444-555555555504"
#define U5 "11111111-2222-3333-4444-555555555505"

static void
dom(struct vctl_status *st, const char *uuid, const char *name, int state,
    bool enabled, const char *reason)
{
	struct domain_status d;

	memset(&d, 0, sizeof(d));
	snprintf(d.uuid, sizeof(d.uuid), "%s", uuid);
	snprintf(d.name, sizeof(d.name), "%s", name);
	d.state = state;
	d.vtpm.enabled = enabled;
	d.vtpm.model = VTPM_MODEL_CRB;
	snprintf(d.reason, sizeof(d.reason), "%s", reason);
	assert_int_equal(vctl_status_add_dom(st, &d), 0);
}

static void
vt(struct vctl_status *st, const char *uuid, int state, const char *reason)
{
	struct vtpm_status v;

	memset(&v, 0, sizeof(v));
	snprintf(v.uuid, sizeof(v.uuid), "%s", uuid);
	v.state = state;
	v.model = VTPM_MODEL_TIS;
	v.mode = VTPM_MODE_EPHEMERAL;
	v.pid = 4242;
	v.encrypted = true;
	v.health = STATE_RESTORED;
	snprintf(v.ctrl_socket, sizeof(v.ctrl_socket), "/run/%s.ctrl", uuid);
	snprintf(v.reason, sizeof(v.reason), "%s", reason);
	assert_int_equal(vctl_status_add_vtpm(st, &v), 0);
}

static void
fill(struct vctl_status *st)
{
	memset(st, 0, sizeof(*st));
	dom(st, U1, "ready", DOM_RUNNING, true, "");
	vt(st, U1, VTPM_READY, "restored from backup");
	dom(st, U2, "nope", DOM_RUNNING, false, "");
	dom(st, U3, "old", DOM_HALTED, true,
	    "rejected: field vtpm.version: TPM 1.2 is not supported");
	dom(st, U4, "wait", DOM_BOOTING, true, "");
	vt(st, U5, VTPM_STOPPED, ""); /* only the launcher knows it */
}

static void
test_join_and_state(void **state)
{
	struct vctl_status st;

	(void) state;
	fill(&st);
	assert_int_equal(st.nrows, 5);
	assert_true(vctl_status_find(&st, U1)->has_dom);
	assert_true(vctl_status_find(&st, U1)->has_vtpm);
	assert_string_equal(vctl_row_state(vctl_status_find(&st, U1)), "READY");
	assert_string_equal(vctl_row_reason(vctl_status_find(&st, U1)),
	                    "restored from backup");
	assert_string_equal(vctl_row_state(vctl_status_find(&st, U2)),
	                    "DISABLED");
	assert_string_equal(vctl_row_state(vctl_status_find(&st, U3)),
	                    "REJECTED");
	assert_non_null(
	    strstr(vctl_row_reason(vctl_status_find(&st, U3)), "TPM 1.2"));
	assert_string_equal(vctl_row_state(vctl_status_find(&st, U4)),
	                    "PENDING");
	assert_string_equal(vctl_row_state(vctl_status_find(&st, U5)),
	                    "STOPPED");
	assert_null(
	    vctl_status_find(&st, "11111111-2222-3333-4444-555555555599"));
	vctl_status_free(&st);
}

static void
test_json(void **state)
{
	struct vctl_status st;
	char              *buf = NULL;
	size_t             len = 0;
	FILE              *f = open_memstream(&buf, &len);
	cJSON             *arr, *o;
	int                found = 0;

	(void) state;
	fill(&st);
	assert_int_equal(vctl_status_print_json(&st, f), 0);
	fclose(f);
	arr = cJSON_Parse(buf);
	assert_non_null(arr);
	assert_int_equal(cJSON_GetArraySize(arr), 5);
	o = cJSON_GetArrayItem(arr, 0);
	/* every field the issue names, with its JSON type */
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "uuid")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "name")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "state")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "model")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "mode")));
	assert_true(cJSON_IsBool(cJSON_GetObjectItem(o, "encrypted")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "health")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "ctrl_socket")));
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "pid")));
	assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "reason")));
	/* the READY one: launcher's view wins for model/mode */
	cJSON_ArrayForEach(o, arr)
	{
		if (strcmp(cJSON_GetObjectItem(o, "uuid")->valuestring, U1) !=
		    0) {
			continue;
		}
		assert_string_equal(
		    cJSON_GetObjectItem(o, "model")->valuestring, "tis");
		assert_string_equal(cJSON_GetObjectItem(o, "mode")->valuestring,
		                    "ephemeral");
		assert_string_equal(
		    cJSON_GetObjectItem(o, "health")->valuestring, "restored");
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "encrypted")));
		assert_int_equal(cJSON_GetObjectItem(o, "pid")->valueint, 4242);
		assert_string_equal(
		    cJSON_GetObjectItem(o, "domain_state")->valuestring,
		    "RUNNING");
		found++;
	}
	/* the loop above checks nothing unless U1 is listed, exactly once */
	assert_int_equal(found, 1);
	cJSON_Delete(arr);
	free(buf);
	vctl_status_free(&st);
}

static void
test_table(void **state)
{
	struct vctl_status st;
	char              *buf = NULL;
	size_t             len = 0;
	FILE              *f = open_memstream(&buf, &len);

	(void) state;
	fill(&st);
	snprintf(st.vt_err, sizeof(st.vt_err), "no answer");
	assert_int_equal(vctl_status_print_table(&st, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "UUID"));
	assert_non_null(strstr(buf, U3));
	assert_non_null(strstr(buf, "REJECTED"));
	assert_non_null(strstr(buf, "TPM 1.2 is not supported"));
	assert_non_null(strstr(buf, "# VtpmStatus: no answer"));
	free(buf);
	vctl_status_free(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_join_and_state),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
