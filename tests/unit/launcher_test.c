/* launcher_test.c: the launcher's decisions (vm.c), swtpm command lines
 * (spawn.c), the sandbox's uid map, reach checks and log tails
 * (sandbox.c), pid file and identity checks, meta files (adopt.c), the
 * --no-guardian state directories (guard.c), and swtpm_ctrl, spawn,
 * stop and a whole start job against real swtpm processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "launcher.h"
#include "log.h"
#include "swtpm_ctrl.h"

#define U1 "00000000-0000-4000-8000-000000000001"

static char                tmp[128];
static struct launcher_cfg cfg;

static int
setup(void **state)
{
	(void) state;
	snprintf(tmp, sizeof(tmp), "/tmp/launcher-test.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(paths_init(&cfg.paths, tmp), 0);
	assert_int_equal(paths_mkdirs(&cfg.paths), 0);
	snprintf(cfg.swtpm, sizeof(cfg.swtpm), "/usr/bin/swtpm");
	snprintf(cfg.swtpm_user, sizeof(cfg.swtpm_user), "tss");
	strfmt(cfg.swtpm_dir, sizeof(cfg.swtpm_dir), "%s/swtpm", cfg.paths.run);
	assert_int_equal(mkdir_p(cfg.swtpm_dir, 0700), 0);
	assert_int_equal(mkdir_p(cfg.paths.ephemeral, 0700), 0);
	cfg.no_guardian = cfg.no_keybroker = true;
	cfg.stop_timeout_ms = 2000;
	cfg.start_timeout_ms = 10000;
	cfg.max_parallel = 4;
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	remove_tree(tmp);
	return 0;
}

static struct domain_status
dom(int state, bool enabled, int mode)
{
	struct domain_status d;

	memset(&d, 0, sizeof(d));
	snprintf(d.uuid, sizeof(d.uuid), U1);
	snprintf(d.name, sizeof(d.name), "vm");
	d.state = state;
	d.vtpm.enabled = enabled;
	d.vtpm.mode = mode;
	return d;
}

/* ---- vm.c ---- */

static void
test_vm_boot_start_and_busy(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_BOOTING, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	assert_int_equal(vm.pidfd, -1);
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_START);
	vm.busy = true; /* the job runs */
	d.state = DOM_HALTING;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	/* start done, swtpm up: now the halt is served */
	vm.busy = false;
	vm.want_start = false;
	vm.phase = VP_RUNNING;
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
	assert_int_equal(vm.want_stop, STOP_RELEASE);
}

static void
test_vm_reboot_keeps_swtpm(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_BOOTING, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm.phase = VP_RUNNING;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	assert_false(vm.want_start);
	/* same VM boots in the other mode: stop first, then start */
	d.vtpm.mode = VTPM_MODE_EPHEMERAL;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
	vm.want_stop = STOP_NONE; /* the stop job ran */
	vm.phase = VP_IDLE;
	assert_int_equal(vm_next_action(&vm, &pub), ACT_START);
}

static void
test_vm_running_does_not_restart(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_RUNNING, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	d.state = DOM_CREATING;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
}

static void
test_vm_disabled(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_BOOTING, false, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	assert_int_equal(pub, 0); /* nothing published, nothing to delete */
	/* disabled while an item exists: the item goes */
	vm.published = true;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	assert_int_equal(pub, -1);
	/* disabled while a swtpm runs: stopped */
	vm.phase = VP_RUNNING;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
	assert_true(vm.forget);
}

static void
test_vm_deleted_purges(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_DELETED, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm_on_domain(&vm, &d);
	/* even with nothing running: the state must be purged */
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
	assert_int_equal(vm.want_stop, STOP_PURGE);
	assert_true(vm.forget);
	/* a HALTED arriving late does not turn the purge into a release */
	d.state = DOM_HALTED;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm.want_stop, STOP_PURGE);
}

static void
test_vm_topic_delete_releases(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_BOOTING, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm_on_domain(&vm, &d);
	vm.want_start = false;
	vm.phase = VP_RUNNING;
	vm_on_domain(&vm, NULL);
	assert_false(vm.have_dom);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
	assert_int_equal(vm.want_stop, STOP_RELEASE); /* never PURGE */
	assert_true(vm.forget);
}

static void
test_vm_halted_after_failure(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_HALTED, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	vm_init(&vm, U1);
	vm.published = true;
	vm.st.state = VTPM_FAILED;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	assert_int_equal(pub, 1);
	assert_int_equal(vm.st.state, VTPM_STOPPED);
	/* with a prepared state, RELEASE is still due */
	vm.prepared = true;
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_STOP);
}

static void
test_vm_version_12_refused(void **state)
{
	struct vm            vm;
	struct domain_status d = dom(DOM_BOOTING, true, VTPM_MODE_PERSISTENT);
	int                  pub;

	(void) state;
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "1.2");
	vm_init(&vm, U1);
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_NONE);
	assert_int_equal(pub, 1);
	assert_int_equal(vm.st.state, VTPM_FAILED);
	assert_non_null(strstr(vm.st.reason, "1.2 is not supported"));
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "2.0");
	vm_on_domain(&vm, &d);
	assert_int_equal(vm_next_action(&vm, &pub), ACT_START);
}

/* ---- spawn.c ---- */

static bool
has_arg(struct spawn_argv *a, const char *s)
{
	for (int i = 0; a->argv[i] != NULL; i++) {
		if (strcmp(a->argv[i], s) == 0) {
			return true;
		}
	}
	return false;
}

static void
test_argv(void **state)
{
	struct spawn_argv a;
	char              want[512];

	(void) state;
	assert_int_equal(spawn_build_argv(&cfg, U1, "/st", -1, &a), 0);
	assert_string_equal(a.argv[0], "/usr/bin/swtpm");
	assert_string_equal(a.argv[1], "socket");
	assert_true(has_arg(&a, "--tpm2"));
	assert_true(has_arg(&a, "dir=/st"));
	strfmt(want, sizeof(want), "type=unixio,path=%s/%s.ctrl", cfg.swtpm_dir,
	       U1);
	assert_true(has_arg(&a, want));
	strfmt(want, sizeof(want), "file=%s/%s.pid", cfg.swtpm_dir, U1);
	assert_true(has_arg(&a, want));
	assert_true(has_arg(&a, "action=kill"));
	assert_false(has_arg(&a, "--runas"));
	assert_false(has_arg(&a, "--key"));
	assert_false(has_arg(&a, "--daemon"));
	assert_false(has_arg(&a, "--terminate"));
	assert_false(has_arg(&a, "--flags"));

	cfg.runas = true;
	assert_int_equal(spawn_build_argv(&cfg, U1, "/st", 3, &a), 0);
	cfg.runas = false;
	assert_true(has_arg(&a, "--runas"));
	assert_true(has_arg(&a, "tss"));
	assert_true(has_arg(&a, "fd=3,format=binary,mode=aes-256-cbc"));
}

/* ---- adopt.c ---- */

static void
write_str(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

static void
test_pidfile(void **state)
{
	char  p[256];
	pid_t pid = 0;

	(void) state;
	snprintf(p, sizeof(p), "%s/x.pid", tmp);
	write_str(p, "1234\n");
	assert_int_equal(adopt_read_pidfile(p, &pid), 0);
	assert_int_equal(pid, 1234);
	write_str(p, "12ab\n");
	assert_int_equal(adopt_read_pidfile(p, &pid), -1);
	write_str(p, "");
	assert_int_equal(adopt_read_pidfile(p, &pid), -1);
	write_str(p, "1\n"); /* init is never our swtpm */
	assert_int_equal(adopt_read_pidfile(p, &pid), -1);
	write_str(p, "-5\n");
	assert_int_equal(adopt_read_pidfile(p, &pid), -1);
	snprintf(p, sizeof(p), "%s/missing.pid", tmp);
	assert_int_equal(adopt_read_pidfile(p, &pid), -1);
}

static void
test_meta_roundtrip(void **state)
{
	struct vtpm_status st, back;

	(void) state;
	memset(&st, 0, sizeof(st));
	snprintf(st.uuid, sizeof(st.uuid), U1);
	snprintf(st.name, sizeof(st.name), "web server");
	st.model = VTPM_MODEL_CRB;
	st.mode = VTPM_MODE_EPHEMERAL;
	st.health = STATE_RESTORED;
	st.encrypted = true;
	assert_int_equal(adopt_write_meta(&cfg, &st), 0);
	memset(&back, 0, sizeof(back));
	assert_int_equal(adopt_read_meta(&cfg, U1, &back), 0);
	assert_int_equal(back.model, VTPM_MODEL_CRB);
	assert_int_equal(back.mode, VTPM_MODE_EPHEMERAL);
	assert_int_equal(back.health, STATE_RESTORED);
	assert_true(back.encrypted);
	assert_string_equal(back.name, "web server");
	assert_int_equal(adopt_read_meta(&cfg,
	                                 "00000000-0000-4000-8000-0000000000ff",
	                                 &back),
	                 -1);
}

/* a real swtpm, started like the launcher does, for identity checks */
static pid_t
start_swtpm(const char *uuid, const char *ctrlpath)
{
	char  st[256], ctl[300];
	pid_t pid;

	snprintf(st, sizeof(st), "%s/st-%s", tmp, uuid);
	assert_int_equal(mkdir_p(st, 0700), 0);
	snprintf(ctl, sizeof(ctl), "type=unixio,path=%s", ctrlpath);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char dir[300];
		snprintf(dir, sizeof(dir), "dir=%s", st);
		execl("/usr/bin/swtpm", "swtpm", "socket", "--tpm2",
		      "--tpmstate", dir, "--ctrl", ctl, (char *) NULL);
		_exit(127);
	}
	return pid;
}

static void
stop_swtpm(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void
test_identity(void **state)
{
	char  ctrl[SOCK_LEN], err[256];
	pid_t pid;
	int   fd;

	(void) state;
	spawn_paths(&cfg, U1, ctrl, NULL, NULL, sizeof(ctrl));
	/* not a swtpm at all */
	assert_int_equal(adopt_check(&cfg, U1, getpid(), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not swtpm"));
	/* no such process */
	assert_int_equal(adopt_check(&cfg, U1, 0x7ffffff0, err, sizeof(err)),
	                 -1);
	/* a swtpm serving our socket */
	pid = start_swtpm(U1, ctrl);
	fd = swtpm_ctrl_connect_wait(ctrl, 5000);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(adopt_check(&cfg, U1, pid, err, sizeof(err)), 0);
	/* the same process is not the swtpm of another VM */
	assert_int_equal(adopt_check(&cfg,
	                             "00000000-0000-4000-8000-000000000002",
	                             pid, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "not the one serving"));
	stop_swtpm(pid);
}

/* ---- swtpm_ctrl.c against a real swtpm ---- */

static void
test_ctrl_protocol(void **state)
{
	static const uint8_t startup[] = {0x80, 0x01, 0, 0,    0, 12,
	                                  0,    0,    1, 0x44, 0, 0};
	static const uint8_t getrand[] = {0x80, 0x01, 0, 0,    0, 12,
	                                  0,    0,    1, 0x7b, 0, 16};
	char                 ctrl[SOCK_LEN];
	uint8_t              rsp[256];
	uint32_t             res = 99;
	pid_t                pid;
	int                  fd, t = -1, n, status;

	(void) state;
	strfmt(ctrl, sizeof(ctrl), "%s/proto.ctrl", tmp);
	/* nobody listens yet: an error, not a hang */
	assert_int_equal(swtpm_ctrl_connect(ctrl, 100), -1);
	pid = start_swtpm("proto", ctrl);
	assert_true((fd = swtpm_ctrl_connect_wait(ctrl, 5000)) >= 0);
	assert_int_equal(swtpm_ctrl_init(fd, 0, &res), 0);
	assert_int_equal(res, 0);
	assert_int_equal(swtpm_ctrl_set_datafd(fd, &t, &res), 0);
	assert_int_equal(res, 0);
	close(fd);
	assert_true(t >= 0);
	n = swtpm_tpm_transmit(t, startup, sizeof(startup), rsp, sizeof(rsp),
	                       5000);
	assert_int_equal(n, 10);
	assert_int_equal(swtpm_tpm_rc(rsp, (size_t) n), 0);
	n = swtpm_tpm_transmit(t, getrand, sizeof(getrand), rsp, sizeof(rsp),
	                       5000);
	assert_int_equal(n, 12 + 16);
	assert_int_equal(swtpm_tpm_rc(rsp, (size_t) n), 0);
	close(t);
	assert_true((fd = swtpm_ctrl_connect(ctrl, 5000)) >= 0);
	assert_int_equal(swtpm_ctrl_shutdown(fd, &res), 0);
	assert_int_equal(res, 0);
	close(fd);
	/* CMD_SHUTDOWN ends swtpm */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(swtpm_tpm_rc(rsp, 4), -1);
}

/* ---- guard.c stand-ins ---- */

static void
test_local_guard(void **state)
{
	struct guardian_rep rep;
	char                err[256], f[600];
	struct stat         sb;

	(void) state;
	assert_int_equal(guard_op(&cfg, GOP_PREPARE, U1, VTPM_MODE_PERSISTENT,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_true(rep.ok);
	assert_int_equal(rep.classification, STATE_NEW);
	assert_false(rep.encrypted);
	assert_int_equal(stat(rep.state_dir, &sb), 0);
	snprintf(f, sizeof(f), "%s/tpm2-00.permall", rep.state_dir);
	write_str(f, "x");
	assert_int_equal(guard_op(&cfg, GOP_PREPARE, U1, VTPM_MODE_PERSISTENT,
	                          true, &rep, err, sizeof(err)),
	                 0);
	assert_int_equal(rep.classification, STATE_NORMAL);
	assert_false(rep.encrypted); /* existing state was written plain */
	assert_int_equal(guard_op(&cfg, GOP_RELEASE, U1, VTPM_MODE_PERSISTENT,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_int_equal(guard_op(&cfg, GOP_RESTORE, U1, VTPM_MODE_PERSISTENT,
	                          false, &rep, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "no backup"));
	assert_int_equal(guard_op(&cfg, GOP_RESET, U1, VTPM_MODE_PERSISTENT,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_int_equal(rep.classification, STATE_RESET);
	assert_int_equal(stat(f, &sb), -1); /* fresh directory */
	assert_int_equal(guard_op(&cfg, GOP_PURGE, U1, VTPM_MODE_PERSISTENT,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_int_equal(stat(rep.state_dir, &sb), -1);

	/* ephemeral: emptied on every prepare */
	assert_int_equal(guard_op(&cfg, GOP_PREPARE, U1, VTPM_MODE_EPHEMERAL,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_non_null(strstr(rep.state_dir, "/run/vtpm/ephemeral/"));
	snprintf(f, sizeof(f), "%s/tpm2-00.permall", rep.state_dir);
	write_str(f, "x");
	assert_int_equal(guard_op(&cfg, GOP_PREPARE, U1, VTPM_MODE_EPHEMERAL,
	                          false, &rep, err, sizeof(err)),
	                 0);
	assert_int_equal(rep.classification, STATE_NEW);
	assert_int_equal(stat(f, &sb), -1);
}

/* ---- spawn + stop + a whole start job, real swtpm ---- */

static void
test_spawn_and_stop(void **state)
{
	char  err[256], how[32], dir[256];
	pid_t pid;
	int   pidfd;
	bool  init_failed;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/spawn-state", tmp);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(spawn_start(&cfg, U1, dir, NULL, &pid, &pidfd,
	                             &init_failed, err, sizeof(err)),
	                 0);
	assert_true(pid > 0);
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(sup_stop(&cfg, U1, pid, pidfd, true, how, sizeof(how)),
	                 0);
	assert_string_equal(how, "CMD_SHUTDOWN");
	assert_int_equal(kill(pid, 0), -1);

	/* a key through the pipe: swtpm accepts it and starts */
	uint8_t *key = secmem_alloc(KEY_LEN);
	assert_non_null(key);
	memset(key, 0x5a, KEY_LEN);
	snprintf(dir, sizeof(dir), "%s/keyed-state", tmp);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(spawn_start(&cfg, U1, dir, key, &pid, &pidfd,
	                             &init_failed, err, sizeof(err)),
	                 0);
	assert_int_equal(sup_stop(&cfg, U1, pid, pidfd, true, how, sizeof(how)),
	                 0);
	/* the wrong key: CMD_INIT refuses the encrypted state */
	memset(key, 0xa5, KEY_LEN);
	assert_int_equal(spawn_start(&cfg, U1, dir, key, &pid, &pidfd,
	                             &init_failed, err, sizeof(err)),
	                 -1);
	assert_true(init_failed);
	assert_non_null(strstr(err, "CMD_INIT"));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pidfd);
	secmem_free(key, KEY_LEN);
}

static void
test_death_description(void **state)
{
	char  err[256], desc[128], dir[256];
	pid_t pid;
	int   pidfd;
	bool  init_failed;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/death-state", tmp);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(spawn_start(&cfg, U1, dir, NULL, &pid, &pidfd,
	                             &init_failed, err, sizeof(err)),
	                 0);
	kill(pid, SIGKILL);
	usleep(100000);
	assert_int_equal(sup_reap(pidfd, true, desc, sizeof(desc)), -1);
	assert_non_null(strstr(desc, "killed by signal 9"));
	close(pidfd);
}

static void
test_job_start_stop(void **state)
{
	struct job j;

	(void) state;
	memset(&j, 0, sizeof(j));
	j.kind = JOB_START;
	snprintf(j.uuid, sizeof(j.uuid), U1);
	snprintf(j.st.uuid, sizeof(j.st.uuid), U1);
	j.mode = VTPM_MODE_PERSISTENT;
	job_run(&cfg, &j);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.st.state, VTPM_READY);
	assert_int_equal(j.st.health, STATE_NEW);
	assert_true(j.prepared);
	assert_true(j.st.pid > 0);
	assert_non_null(strstr(j.st.ctrl_socket, U1 ".ctrl"));

	/* a second start while it runs is refused, not doubled */
	struct job k = j;
	k.kind = JOB_START;
	job_run(&cfg, &k);
	assert_int_equal(k.rc, -1);
	assert_non_null(strstr(k.st.reason, "still runs"));

	j.kind = JOB_STOP;
	j.stop_op = STOP_RELEASE;
	job_run(&cfg, &j);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.st.state, VTPM_STOPPED);
	assert_false(j.prepared);
}

/* ---- sandbox.c ---- */

static void
test_sandbox_argv(void **state)
{
	struct spawn_argv a;

	(void) state;
	cfg.sandbox = true;
	assert_int_equal(spawn_build_argv(&cfg, U1, "/s", 3, &a), 0);
	assert_true(has_arg(&a, "type=unixio,fd=4"));
	assert_true(has_arg(&a, "fd=5"));
	assert_true(has_arg(&a, "action=kill"));
	assert_false(has_arg(&a, "--pid"));   /* the launcher writes it */
	assert_false(has_arg(&a, "--runas")); /* its uid is set before exec */
	cfg.sandbox = false;
}

static void
test_reach(void **state)
{
	char d[256], sub[300], err[512];

	(void) state;
	/* mkdtemp made tmp 0700 too: open it, so that "private" is the
	 * first directory in the way */
	assert_int_equal(chmod(tmp, 0711), 0);
	snprintf(d, sizeof(d), "%s/private", tmp);
	snprintf(sub, sizeof(sub), "%s/state", d);
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(d, 0, 0), 0);
		assert_int_equal(chown(sub, 59, 59), 0);
	}
	/* uid 59 cannot pass the 0700 parent: named, with its mode */
	assert_int_equal(
	    sbx_reach(sub, 59, 59, true, "state directory", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "cannot reach state directory"));
	assert_non_null(strstr(err, "private is mode 0700"));
	assert_non_null(strstr(err, "no search permission for uid 59"));
	assert_int_equal(chmod(d, 0711), 0);
	if (geteuid() == 0) {
		assert_int_equal(sbx_reach(sub, 59, 59, true, "state directory",
		                           err, sizeof(err)),
		                 0);
		/* its own directory, but another uid: no rwx */
		assert_int_equal(sbx_reach(sub, 60, 60, true, "state directory",
		                           err, sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "needs rwx for uid 60"));
	}
}

static void
test_log_tail(void **state)
{
	char f[256], out[128];

	(void) state;
	snprintf(f, sizeof(f), "%s/x.log", tmp);
	sbx_log_tail(f, 3, out, sizeof(out));
	assert_string_equal(out, ""); /* no log */
	assert_int_equal(durable_write(f, "a\nb\nc\nd\ne\n\n", 11, 0600), 0);
	sbx_log_tail(f, 3, out, sizeof(out));
	assert_string_equal(out, "c | d | e");
	assert_int_equal(durable_write(f, "only", 4, 0600), 0);
	sbx_log_tail(f, 3, out, sizeof(out));
	assert_string_equal(out, "only");
	/* cut to the buffer, still terminated */
	assert_int_equal(durable_write(f, "0123456789abcdef", 16, 0600), 0);
	sbx_log_tail(f, 3, out, 8);
	assert_int_equal(strlen(out), 4);
}

#define U2 "00000000-0000-4000-8000-000000000002"
#define U3 "00000000-0000-4000-8000-000000000003"

static void
test_uid_map(void **state)
{
	char  err[REASON_LEN];
	uid_t a, b, again;

	(void) state;
	if (geteuid() != 0) {
		skip(); /* sbx_open needs root (namespaces) */
	}
	cfg.sandbox = true;
	cfg.uid_lo = 3900000;
	cfg.uid_hi = 3900001;
	assert_int_equal(sbx_open(&cfg), 0);
	assert_int_equal(sbx_uid(&cfg, U1, &a, err, sizeof(err)), 0);
	assert_int_equal(sbx_uid(&cfg, U2, &b, err, sizeof(err)), 0);
	assert_int_equal(a, 3900000);
	assert_int_equal(b, 3900001);
	/* the same VM, the same uid */
	assert_int_equal(sbx_uid(&cfg, U1, &again, err, sizeof(err)), 0);
	assert_int_equal(again, a);
	/* two uids, two VMs: the third gets none, never a shared one */
	assert_int_equal(sbx_uid(&cfg, U3, &again, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "uid range 3900000-3900001 exhausted"));
	/* recorded: a new launcher finds the same mapping */
	sbx_close(&cfg);
	assert_int_equal(sbx_open(&cfg), 0);
	assert_int_equal(sbx_lookup(&cfg, U2, &again), 0);
	assert_int_equal(again, b);
	/* a purged VM gives its uid back */
	sbx_forget(&cfg, U1);
	assert_int_equal(sbx_lookup(&cfg, U1, &again), -1);
	assert_int_equal(sbx_uid(&cfg, U3, &again, err, sizeof(err)), 0);
	assert_int_equal(again, a);
	/* outside a narrowed range: forgotten, allocated anew */
	sbx_close(&cfg);
	cfg.uid_lo = cfg.uid_hi = 3900001;
	assert_int_equal(sbx_open(&cfg), 0);
	assert_int_equal(sbx_lookup(&cfg, U3, &again), -1);
	assert_int_equal(sbx_lookup(&cfg, U2, &again), 0);
	sbx_close(&cfg);
	cfg.sandbox = false;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vm_boot_start_and_busy),
	    cmocka_unit_test(test_vm_reboot_keeps_swtpm),
	    cmocka_unit_test(test_vm_running_does_not_restart),
	    cmocka_unit_test(test_vm_disabled),
	    cmocka_unit_test(test_vm_deleted_purges),
	    cmocka_unit_test(test_vm_topic_delete_releases),
	    cmocka_unit_test(test_vm_halted_after_failure),
	    cmocka_unit_test(test_vm_version_12_refused),
	    cmocka_unit_test_setup_teardown(test_argv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pidfile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_roundtrip, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctrl_protocol, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_local_guard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spawn_and_stop, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_death_description, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_sandbox_argv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_log_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uid_map, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_start_stop, setup,
	                                    teardown),
	};

	log_init(LOG_LVL_WARN, 0);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
