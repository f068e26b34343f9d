/* domainmgr_test.c: the lifecycle decisions of the domain manager, driven
 * with fake publish/vtpm/vm operations and a fake clock. Also the QEMU
 * command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common.h"
#include "domainmgr.h"

#define U1 "11111111-2222-3333-4444-555555555501"
#define U2 "11111111-2222-3333-4444-555555555502"

/* ---- the fake world ---- */

#define MAXEV 256
struct fake {
	/* every publication, in order: "U1 BOOTING reason" */
	char                 events[MAXEV][400];
	int                  nev;
	struct vtpm_status   vt[4];
	bool                 has_vt[4];
	int                  starts;
	char                 start_ctrl[SOCK_LEN]; /* "" = without TPM */
	bool                 start_fail;
	int                  terms, kills;
	pid_t                next_pid;
	struct domain_status last[4];
};

static struct fake F;
static struct dm   DM;
static uint64_t    NOW;

static int
slot(const char *uuid)
{
	return strcmp(uuid, U1) == 0 ? 0 : 1;
}

static int
f_publish(void *arg, const struct domain_status *ds)
{
	(void) arg;
	assert_true(F.nev < MAXEV);
	snprintf(F.events[F.nev++], sizeof(F.events[0]), "%s %s%s%s",
	         strcmp(ds->uuid, U1) == 0 ? "U1" : "U2",
	         dom_state_name(ds->state), ds->reason[0] ? " " : "",
	         ds->reason);
	F.last[slot(ds->uuid)] = *ds;
	return 0;
}

static int
f_unpublish(void *arg, const char *uuid)
{
	(void) arg;
	snprintf(F.events[F.nev++], sizeof(F.events[0]), "%s gone",
	         strcmp(uuid, U1) == 0 ? "U1" : "U2");
	return 0;
}

static int
f_vtpm_get(void *arg, const char *uuid, struct vtpm_status *out)
{
	(void) arg;
	if (!F.has_vt[slot(uuid)]) {
		return -1;
	}
	*out = F.vt[slot(uuid)];
	return 0;
}

static int
f_vm_start(void *arg, const struct dm_app *a, const char *ctrl, pid_t *pid,
           char *err, size_t errlen)
{
	(void) arg;
	(void) a;
	if (F.start_fail) {
		snprintf(err, errlen, "no such kernel");
		return -1;
	}
	F.starts++;
	snprintf(F.start_ctrl, sizeof(F.start_ctrl), "%s", ctrl ? ctrl : "");
	*pid = F.next_pid++;
	return 0;
}

static void
f_vm_signal(void *arg, const struct dm_app *a, bool force)
{
	(void) arg;
	(void) a;
	if (force) {
		F.kills++;
	} else {
		F.terms++;
	}
}

static const struct dm_timeouts TO = {.halt_ms = 1000,
                                      .delete_ms = 3000,
                                      .linger_ms = 500,
                                      .vm_kill_ms = 200,
                                      .warn_ms = 10000};

static void
start_world(bool with_vms)
{
	struct dm_ops ops = {.arg = NULL,
	                     .publish = f_publish,
	                     .unpublish = f_unpublish,
	                     .vtpm_get = f_vtpm_get,
	                     .vm_start = with_vms ? f_vm_start : NULL,
	                     .vm_signal = f_vm_signal};

	memset(&F, 0, sizeof(F));
	F.next_pid = 1000;
	NOW = 1000000;
	dm_init(&DM, &ops, &TO);
}

static int
teardown(void **state)
{
	(void) state;
	dm_free(&DM);
	return 0;
}

static void
config(const char *doc)
{
	struct dmcfg cfg;
	char         err[256];

	if (dmcfg_parse(doc, strlen(doc), &cfg, err, sizeof(err)) < 0) {
		fail_msg("config: %s", err);
	}
	dm_apply_config(&DM, &cfg, NOW);
	dmcfg_free(&cfg);
}

static void
vtpm(const char *uuid, int state, const char *ctrl, const char *reason)
{
	struct vtpm_status *v = &F.vt[slot(uuid)];

	memset(v, 0, sizeof(*v));
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	v->state = state;
	snprintf(v->ctrl_socket, sizeof(v->ctrl_socket), "%s", ctrl);
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
	F.has_vt[slot(uuid)] = true;
	dm_vtpm_event(&DM, uuid); /* as the daemon's subscriber does */
}

static void
step_at(uint64_t ms)
{
	NOW += ms;
	dm_step(&DM, NOW);
}

/* The publications since the last call are exactly the given ones. */
static int seen;
static void
expect(const char *first, ...)
{
	va_list     ap;
	const char *e = first;

	va_start(ap, first);
	while (e != NULL) {
		if (seen >= F.nev) {
			fail_msg("expected \"%s\", no more events (%d)", e,
			         F.nev);
		}
		if (strncmp(F.events[seen], e, strlen(e)) != 0) {
			fail_msg("event %d is \"%s\", expected \"%s\"", seen,
			         F.events[seen], e);
		}
		seen++;
		e = va_arg(ap, const char *);
	}
	va_end(ap);
	if (seen != F.nev) {
		fail_msg("unexpected event \"%s\"", F.events[seen]);
	}
}
#define EXPECT(...) expect(__VA_ARGS__, NULL)
#define NONE()      expect(NULL)

static const char *APP1 = "{\"apps\":[{\"uuid\":\"" U1 "\",\"name\":\"a\"}]}";
static const char *APP1_OFF =
    "{\"apps\":[{\"uuid\":\"" U1 "\",\"name\":\"a\",\"activate\":false}]}";

/* ---- tests ---- */

static void
test_boot_waits_for_ready(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING");
	assert_true(F.last[0].vtpm.enabled);
	step_at(5000);
	NONE(); /* no VtpmStatus: keeps waiting */
	vtpm(U1, VTPM_STARTING, "", "");
	step_at(10);
	NONE();
	assert_int_equal(F.starts, 0);
	vtpm(U1, VTPM_READY, "/run/x/swtpm/u1.ctrl", "");
	step_at(10);
	EXPECT("U1 RUNNING");
	assert_int_equal(F.starts, 1);
	assert_string_equal(F.start_ctrl, "/run/x/swtpm/u1.ctrl");
	assert_string_equal(F.last[0].reason, "");
	/* the same config again changes nothing */
	config(APP1);
	step_at(10);
	NONE();
	assert_int_equal(F.starts, 1);
}

static void
test_vtpm_failed_boots_without_tpm(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING");
	vtpm(U1, VTPM_FAILED, "", "key refused: policy-mismatch");
	step_at(1);
	EXPECT("U1 RUNNING vtpm failed: key refused: policy-mismatch");
	assert_int_equal(F.starts, 1);
	assert_string_equal(F.start_ctrl, "");
}

static void
test_disabled_runs_at_once(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config("[{\"uuid\":\"" U1 "\",\"vtpm\":{\"enabled\":false}}]");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	assert_false(F.last[0].vtpm.enabled);
	assert_int_equal(F.starts, 1);
	assert_string_equal(F.start_ctrl, "");
}

static void
test_not_activated_is_halted(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1_OFF);
	step_at(0);
	EXPECT("U1 HALTED");
	step_at(100000);
	NONE();
	assert_int_equal(F.starts, 0);
	/* activated: boots from HALTED */
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(10);
	EXPECT("U1 BOOTING", "U1 RUNNING");
	assert_int_equal(F.starts, 1);
}

static void
test_halt_stops_vm_then_halted(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	config(APP1_OFF);
	step_at(10);
	EXPECT("U1 HALTING");
	assert_int_equal(F.terms, 1);
	step_at(100);
	NONE(); /* the VM has not exited yet */
	assert_int_equal(dm_vm_exited(&DM, 1000, 0, NOW), 0);
	step_at(10);
	NONE(); /* the vTPM is still READY */
	vtpm(U1, VTPM_STOPPED, "", "");
	step_at(10);
	EXPECT("U1 HALTED");
	assert_int_equal(F.kills, 0);
	assert_int_equal(dm_running_vms(&DM), 0);
}

static void
test_halt_kills_stubborn_vm_and_times_out(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	config(APP1_OFF);
	step_at(0);
	EXPECT("U1 HALTING");
	step_at(TO.vm_kill_ms - 1);
	assert_int_equal(F.kills, 0);
	step_at(1);
	assert_int_equal(F.kills, 1);
	step_at(1);
	assert_int_equal(F.kills, 1); /* once */
	dm_vm_exited(&DM, 1000, SIGKILL, NOW);
	/* the launcher never reports STOPPED: HALTED after halt_ms */
	step_at(10);
	NONE();
	step_at(TO.halt_ms);
	EXPECT("U1 HALTED");
}

static void
test_delete_waits_for_stopped(void **state)
{
	(void) state;
	seen = 0;
	start_world(false); /* no VMs: the daemon without --qemu */
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	config("{\"apps\":[]}");
	step_at(0);
	EXPECT("U1 HALTING removed from config");
	vtpm(U1, VTPM_STOPPED, "", "");
	step_at(10);
	EXPECT("U1 DELETED");
	step_at(TO.linger_ms - 20);
	NONE(); /* lingers, so a subscriber that missed it resyncs */
	step_at(20);
	EXPECT("U1 gone");
	assert_null(dm_find(&DM, U1));
}

static void
test_delete_timeout(void **state)
{
	(void) state;
	seen = 0;
	start_world(false);
	config(APP1);
	vtpm(U1, VTPM_STARTING, "", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING");
	config("[]");
	step_at(0);
	EXPECT("U1 DELETED"); /* no VM yet: straight to DELETED */
	step_at(TO.linger_ms);
	NONE(); /* launcher still busy */
	step_at(TO.delete_ms - TO.linger_ms);
	EXPECT("U1 gone");
}

static void
test_rejected_new_app(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config("[{\"uuid\":\"" U1 "\",\"name\":\"old\",\"vtpm\":{\"version\":"
	       "\"1.2\"}},{\"uuid\":\"" U2 "\",\"vtpm\":{\"enabled\":false}}]");
	step_at(0);
	EXPECT("U1 HALTED rejected: field vtpm.version: TPM 1.2 is not "
	       "supported",
	       "U2 CREATING", "U2 BOOTING", "U2 RUNNING");
	assert_string_equal(F.last[0].name, "old");
	assert_int_equal(F.starts, 1);
	/* fixed by the controller: it boots */
	config("[{\"uuid\":\"" U1 "\",\"name\":\"old\"},{\"uuid\":\"" U2
	       "\",\"vtpm\":{\"enabled\":false}}]");
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(10);
	EXPECT("U1 BOOTING", "U1 RUNNING");
}

static void
test_bad_entry_keeps_running_app(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	/* a broken edit of a running app: it keeps running as it was */
	config("[{\"uuid\":\"" U1 "\",\"vtpm\":{\"model\":\"xyz\"}}]");
	step_at(10);
	EXPECT("U1 RUNNING config entry rejected, last good settings kept: "
	       "field vtpm.model: unknown value \"xyz\"");
	assert_int_equal(F.terms, 0);
	assert_string_equal(F.last[0].name, "a");
	config(APP1);
	step_at(10);
	EXPECT("U1 RUNNING");
	assert_string_equal(F.last[0].reason, "");
	/* a duplicate of a running app is a bad entry too */
	config("[{\"uuid\":\"" U1 "\"},{\"uuid\":\"" U1 "\"}]");
	step_at(10);
	EXPECT("U1 RUNNING config entry rejected");
	assert_int_equal(F.terms, 0);
}

static void
test_vm_exit_then_reboot_on_reload(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	assert_int_equal(dm_vm_exited(&DM, 4242, 0, NOW), -1); /* not ours */
	assert_int_equal(dm_vm_exited(&DM, 1000, 1 << 8, NOW), 0);
	EXPECT("U1 HALTING vm exited (exit status 1)");
	vtpm(U1, VTPM_STOPPED, "", "");
	step_at(10);
	EXPECT("U1 HALTED vm exited (exit status 1)");
	step_at(100000);
	NONE();       /* no crash loop: stays halted */
	config(APP1); /* SIGHUP or a new file: boot it again */
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(10);
	EXPECT("U1 BOOTING", "U1 RUNNING");
	assert_int_equal(F.starts, 2);
}

/* swtpm died, the VM halted; on the next boot the old FAILED must not
 * decide: the launcher gets to try again. */
static void
test_stale_failed_does_not_decide_next_boot(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	vtpm(U1, VTPM_FAILED, "", "swtpm exited (signal 9)");
	config(APP1_OFF);
	step_at(1);
	EXPECT("U1 HALTING");
	dm_vm_exited(&DM, 1000, SIGTERM, NOW);
	step_at(1);
	EXPECT("U1 HALTED"); /* FAILED counts as stopped for halting */
	config(APP1);
	step_at(1);
	EXPECT("U1 BOOTING");
	step_at(TO.halt_ms - 10);
	NONE(); /* the stale FAILED is not this boot's answer */
	assert_int_equal(F.starts, 1);
	vtpm(U1, VTPM_STARTING, "", "");
	step_at(1);
	NONE();
	vtpm(U1, VTPM_READY, "/c2", "");
	step_at(1);
	EXPECT("U1 RUNNING");
	assert_string_equal(F.start_ctrl, "/c2");
	/* and when the launcher never answers again, the VM still boots */
	vtpm(U1, VTPM_FAILED, "", "swtpm exited (signal 9)");
	dm_vm_exited(&DM, 1001, 0, NOW);
	step_at(1);
	EXPECT("U1 HALTING vm exited", "U1 HALTED vm exited");
	config(APP1);
	step_at(1);
	EXPECT("U1 BOOTING");
	assert_int_equal(dm_step(&DM, NOW), (int) TO.halt_ms);
	step_at(TO.halt_ms);
	EXPECT("U1 RUNNING vtpm failed: swtpm exited (signal 9)");
	assert_string_equal(F.start_ctrl, "");
}

static void
test_spec_change_applies_at_next_boot(void **state)
{
	(void) state;
	seen = 0;
	start_world(false);
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING", "U1 RUNNING");
	config("[{\"uuid\":\"" U1 "\",\"name\":\"a\",\"vtpm\":{\"model\":"
	       "\"crb\"}}]");
	step_at(10);
	NONE();
	assert_int_equal(F.last[0].vtpm.model, VTPM_MODEL_TIS);
	config("[{\"uuid\":\"" U1 "\",\"name\":\"a\",\"activate\":false,"
	       "\"vtpm\":{\"model\":\"crb\"}}]");
	vtpm(U1, VTPM_STOPPED, "", "");
	step_at(10);
	EXPECT("U1 HALTING", "U1 HALTED", "U1 HALTED");
	assert_int_equal(F.last[0].vtpm.model, VTPM_MODEL_CRB);
	config("[{\"uuid\":\"" U1 "\",\"name\":\"a\",\"vtpm\":{\"model\":"
	       "\"crb\"}}]");
	step_at(10);
	EXPECT("U1 BOOTING");
	assert_int_equal(F.last[0].vtpm.model, VTPM_MODEL_CRB);
}

static void
test_readded_while_deleted(void **state)
{
	(void) state;
	seen = 0;
	start_world(false);
	config(APP1_OFF);
	step_at(0);
	EXPECT("U1 HALTED");
	config("[]");
	step_at(0);
	EXPECT("U1 DELETED");
	config(APP1);
	step_at(10);
	EXPECT("U1 CREATING", "U1 BOOTING");
	step_at(TO.delete_ms * 2);
	NONE(); /* the item was not removed */
	assert_non_null(dm_find(&DM, U1));
}

static void
test_vm_start_failure(void **state)
{
	(void) state;
	seen = 0;
	start_world(true);
	F.start_fail = true;
	config(APP1);
	vtpm(U1, VTPM_READY, "/c", "");
	step_at(0);
	EXPECT("U1 CREATING", "U1 BOOTING",
	       "U1 HALTING vm start failed: no such kernel");
	vtpm(U1, VTPM_STOPPED, "", "");
	step_at(10);
	EXPECT("U1 HALTED vm start failed: no such kernel");
}

static void
test_never_valid_absent_app_is_dropped(void **state)
{
	(void) state;
	seen = 0;
	start_world(false);
	/* no uuid: nothing can be published for it */
	config("[{\"uuid\":\"bad\"}]");
	assert_int_equal(dm_step(&DM, NOW), -1);
	NONE();
	assert_int_equal(DM.napps, 0);
}

static void
test_qemu_argv(void **state)
{
	struct dm_qemu      q = {.kernel = "/k",
	                         .initrd = "/i",
	                         .serial = "/logs/%n-%u.log",
	                         .memory = "512"};
	struct dm_app       a;
	struct dm_qemu_bufs b;
	const char         *argv[DM_QEMU_ARGV_MAX];
	char                err[256], line[2048] = "";

	(void) state;
	memset(&a, 0, sizeof(a));
	snprintf(a.uuid, sizeof(a.uuid), "%s", U1);
	snprintf(a.name, sizeof(a.name), "we/b");
	a.spec.model = VTPM_MODEL_CRB;
	assert_int_equal(dm_qemu_argv(&q, &a, "/run/s/u1.ctrl", argv,
	                              DM_QEMU_ARGV_MAX, &b, err, sizeof(err)),
	                 0);
	for (int i = 0; argv[i] != NULL; i++) {
		strcat(line, argv[i]);
		strcat(line, " ");
	}
	assert_non_null(strstr(line, "qemu-system-x86_64 -accel tcg -m 512 "
	                             "-nographic"));
	assert_non_null(strstr(line, "-serial file:/logs/we_b-" U1 ".log"));
	assert_non_null(strstr(line, "-kernel /k -initrd /i -append "
	                             "console=ttyS0"));
	assert_non_null(strstr(line, "-chardev socket,id=chrtpm,path=/run/s/"
	                             "u1.ctrl -tpmdev emulator,id=tpm0,"
	                             "chardev=chrtpm -device tpm-crb,"
	                             "tpmdev=tpm0"));
	/* without a TPM: no tpm arguments at all */
	a.spec.model = VTPM_MODEL_TIS;
	assert_int_equal(dm_qemu_argv(&q, &a, NULL, argv, DM_QEMU_ARGV_MAX, &b,
	                              err, sizeof(err)),
	                 0);
	/* the loop below proves nothing over an empty argv */
	assert_non_null(argv[0]);
	assert_string_equal(argv[0], "qemu-system-x86_64");
	for (int i = 0; argv[i] != NULL; i++) {
		assert_null(strstr(argv[i], "tpm"));
	}
	/* a comma would split QEMU's option */
	assert_int_equal(dm_qemu_argv(&q, &a, "/a,b", argv, DM_QEMU_ARGV_MAX,
	                              &b, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "comma"));
	q.kernel = NULL;
	assert_int_equal(dm_qemu_argv(&q, &a, NULL, argv, DM_QEMU_ARGV_MAX, &b,
	                              err, sizeof(err)),
	                 -1);
	q.kernel = "/k";
	q.serial = "/x/%q";
	assert_int_equal(dm_qemu_argv(&q, &a, NULL, argv, DM_QEMU_ARGV_MAX, &b,
	                              err, sizeof(err)),
	                 -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_boot_waits_for_ready, teardown),
	    cmocka_unit_test_teardown(test_vtpm_failed_boots_without_tpm,
	                              teardown),
	    cmocka_unit_test_teardown(test_disabled_runs_at_once, teardown),
	    cmocka_unit_test_teardown(test_not_activated_is_halted, teardown),
	    cmocka_unit_test_teardown(test_halt_stops_vm_then_halted, teardown),
	    cmocka_unit_test_teardown(test_halt_kills_stubborn_vm_and_times_out,
	                              teardown),
	    cmocka_unit_test_teardown(test_delete_waits_for_stopped, teardown),
	    cmocka_unit_test_teardown(test_delete_timeout, teardown),
	    cmocka_unit_test_teardown(test_rejected_new_app, teardown),
	    cmocka_unit_test_teardown(test_bad_entry_keeps_running_app,
	                              teardown),
	    cmocka_unit_test_teardown(test_vm_exit_then_reboot_on_reload,
	                              teardown),
	    cmocka_unit_test_teardown(
	        test_stale_failed_does_not_decide_next_boot, teardown),
	    cmocka_unit_test_teardown(test_spec_change_applies_at_next_boot,
	                              teardown),
	    cmocka_unit_test_teardown(test_readded_while_deleted, teardown),
	    cmocka_unit_test_teardown(test_vm_start_failure, teardown),
	    cmocka_unit_test_teardown(test_never_valid_absent_app_is_dropped,
	                              teardown),
	    cmocka_unit_test(test_qemu_argv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
