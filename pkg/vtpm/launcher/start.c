/*
 * start.c: the jobs a worker thread runs for one VM.
 *
 * Start: key release (persistent mode), guardian PREPARE, swtpm +
 * CMD_INIT; when CMD_INIT rejects the state: RESTORE and retry, then
 * RESET and retry. Stop: graceful stop, then RELEASE or PURGE.
 */
#include "launcher.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* an swtpm whose state was rejected: no grace needed */
static void
kill_now(pid_t *pid, int *pidfd)
{
	if (*pidfd >= 0) {
		(void) pidfd_send_signal(*pidfd, SIGKILL, NULL, 0);
		(void) waitid(P_PIDFD, (id_t) *pidfd, &(siginfo_t){0}, WEXITED);
		close(*pidfd);
	} else if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
	*pidfd = -1;
}

static void
fail(struct job *j, const char *reason)
{
	j->rc = -1;
	j->st.state = VTPM_FAILED;
	j->st.pid = 0;
	vm_strcpy(j->st.reason, reason, sizeof(j->st.reason));
	log_warnx("%s: vTPM failed: %s", j->uuid, reason);
}

/* The state key (persistent state) and the guardian's prepare: rep says
 * where the state is and what it is. *have_key: a key is in key and the
 * state is encrypted. 0, or -1 after fail(). why: why there is no key. */
static int
start_prepare(const struct launcher_cfg *cfg, struct job *j, uint8_t *key,
              bool *have_key, struct guardian_rep *rep, char *why,
              size_t whylen)
{
	char err[REASON_LEN], msg[REASON_LEN * 2];
	int  r;

	*have_key = false;
	if (j->mode == VTPM_MODE_PERSISTENT) {
		if ((r = guard_key(cfg, j->uuid, key, why, whylen)) < 0) {
			fail(j, why);
			return -1;
		}
		*have_key = r == 1;
	}
	if (guard_op(cfg, GOP_PREPARE, j->uuid, j->mode, *have_key, rep, err,
	             sizeof(err)) < 0) {
		fail(j, err);
		return -1;
	}
	j->prepared = true;
	j->st.health = rep->classification;
	if (rep->classification == STATE_RESTORED ||
	    rep->classification == STATE_RESET) {
		/* the guardian found the current generation bad: say so */
		strfmt(j->st.reason, sizeof(j->st.reason),
		       "%s by the guardian%s%s",
		       rep->classification == STATE_RESTORED
		           ? "state restored from backup"
		           : "STATE RESET (fresh TPM)",
		       rep->reason[0] ? ": " : "", rep->reason);
	}
	if (rep->encrypted && !*have_key) {
		snprintf(msg, sizeof(msg), "state is encrypted but no key: %s",
		         why);
		fail(j, msg);
		return -1;
	}
	if (*have_key && !rep->encrypted) {
		log_warnx("%s: existing state is not encrypted: starting it "
		          "unencrypted",
		          j->uuid);
		*have_key = false;
	} else if (!*have_key && j->mode == VTPM_MODE_PERSISTENT &&
	           cfg->keybroker != NULL) {
		log_warnx("%s: state unencrypted: %s", j->uuid, why);
	}
	return 0;
}

/* Spawn swtpm on the prepared state; when swtpm rejects it, ask the
 * guardian to restore the backup, then to reset. 0 with j->pid running,
 * or -1 after fail(). key: NULL for unencrypted state. */
static int
start_swtpm(const struct launcher_cfg *cfg, struct job *j,
            struct guardian_rep *rep, const uint8_t *key)
{
	static const int fallback[] = {GOP_RESTORE, GOP_RESET};
	char             err[REASON_LEN], first[REASON_LEN];
	char             msg[REASON_LEN * 2];
	bool             init_failed;

	if (spawn_start(cfg, j->uuid, rep->state_dir, key, &j->pid, &j->pidfd,
	                &init_failed, err, sizeof(err)) == 0) {
		return 0;
	}
	if (!init_failed) {
		kill_now(&j->pid, &j->pidfd);
		fail(j, err);
		return -1;
	}
	/* the state was rejected: restore the backup, then reset */
	snprintf(first, sizeof(first), "%s", err);
	for (int step = 0; step < 2; step++) {
		kill_now(&j->pid, &j->pidfd);
		log_warnx("%s: %s: asking the guardian to %s", j->uuid, err,
		          guardian_op_name(fallback[step]));
		if (guard_op(cfg, fallback[step], j->uuid, j->mode, key != NULL,
		             rep, err, sizeof(err)) < 0) {
			continue;
		}
		j->st.health = rep->classification;
		if (spawn_start(cfg, j->uuid, rep->state_dir, key, &j->pid,
		                &j->pidfd, &init_failed, err,
		                sizeof(err)) == 0) {
			strfmt(j->st.reason, sizeof(j->st.reason),
			       "%s after %s",
			       step == 0 ? "state restored from backup"
			                 : "STATE RESET (fresh TPM)",
			       first);
			return 0;
		}
	}
	kill_now(&j->pid, &j->pidfd);
	strfmt(msg, sizeof(msg), "%s; restore and reset did not help: %s",
	       first, err);
	fail(j, msg);
	return -1;
}

/* swtpm runs: a fresh TPM gets its EK, then the job is READY. 0, or -1
 * after fail() (swtpm killed). */
static int
start_ready(const struct launcher_cfg *cfg, struct job *j, bool have_key,
            uint64_t t0)
{
	char err[REASON_LEN];

	if (j->ek != VTPM_EK_NONE && j->mode == VTPM_MODE_PERSISTENT &&
	    (j->st.health == STATE_NEW || j->st.health == STATE_RESET)) {
		int certs;

		/* a fresh TPM (first start, or a reset one): its EK
		 * certificates, before READY; a state that was started
		 * before keeps whatever its guest made of it */
		if (lek_provision(cfg, j->uuid, j->ek, &certs, err,
		                  sizeof(err)) < 0) {
			kill_now(&j->pid, &j->pidfd);
			fail(j, err);
			return -1;
		}
	}
	j->rc = 0;
	j->st.state = VTPM_READY;
	j->st.pid = j->pid;
	j->st.encrypted = have_key;
	(void) spawn_paths(cfg, j->uuid, j->st.ctrl_socket, NULL, NULL,
	                   sizeof(j->st.ctrl_socket));
	(void) adopt_write_meta(cfg, &j->st);
	log_info("%s: vTPM ready in %llu ms: swtpm %d, %s, %s, state %s%s%s",
	         j->uuid, (unsigned long long) (now_ms() - t0), (int) j->pid,
	         vtpm_model_name(j->model), vtpm_mode_name(j->mode),
	         state_class_name(j->st.health),
	         have_key ? ", encrypted" : ", unencrypted",
	         j->st.reason[0] ? "; " : "");
	if (j->st.reason[0]) {
		log_warnx("%s: %s", j->uuid, j->st.reason);
	}
	return 0;
}

static void
job_start(const struct launcher_cfg *cfg, struct job *j)
{
	struct guardian_rep rep;
	char                why[REASON_LEN] = "", msg[REASON_LEN * 2];
	uint8_t            *key = NULL;
	bool                have_key = false;
	uint64_t            t0 = now_ms();

	j->pid = 0;
	j->pidfd = -1;
	j->child = true;
	if (adopt_live_swtpm(cfg, j->uuid, &j->pid)) {
		/* never two swtpm on one state (nor an emptied ephemeral
		 * state under a running one) */
		strfmt(msg, sizeof(msg),
		       "swtpm %d still runs for this VM but was not adopted",
		       (int) j->pid);
		j->pid = 0;
		fail(j, msg);
		return;
	}
	if (j->mode == VTPM_MODE_PERSISTENT &&
	    (key = secmem_alloc(KEY_LEN)) == NULL) {
		fail(j, "no locked memory for the state key");
		return;
	}
	if (start_prepare(cfg, j, key, &have_key, &rep, why, sizeof(why)) ==
	        0 &&
	    start_swtpm(cfg, j, &rep, have_key ? key : NULL) == 0) {
		(void) start_ready(cfg, j, have_key, t0);
	}
	if (key != NULL) {
		secmem_free(key, KEY_LEN);
	}
}

static void
job_stop(const struct launcher_cfg *cfg, struct job *j)
{
	struct guardian_rep rep;
	char                how[32] = "", err[REASON_LEN];
	int op = j->stop_op == STOP_PURGE ? GOP_PURGE : GOP_RELEASE;

	j->rc = 0;
	j->st.state = VTPM_STOPPED;
	if (j->pidfd >= 0) {
		if (sup_stop(cfg, j->uuid, j->pid, j->pidfd, j->child, how,
		             sizeof(how)) < 0) {
			j->rc = -1;
			snprintf(j->st.reason, sizeof(j->st.reason),
			         "swtpm %d does not stop", (int) j->pid);
			j->st.state = VTPM_FAILED;
			return;
		}
		j->pidfd = -1;
		j->pid = 0;
	}
	if ((j->prepared || op == GOP_PURGE) &&
	    guard_op(cfg, op, j->uuid, j->mode, false, &rep, err, sizeof(err)) <
	        0) {
		log_warnx("%s: %s", j->uuid, err);
		vm_strcpy(j->st.reason, err, sizeof(j->st.reason));
		j->rc = -1;
		return;
	}
	j->prepared = false;
	if (op == GOP_PURGE) {
		sbx_forget(cfg, j->uuid); /* no state left to own */
	}
	log_info("%s: vTPM stopped%s%s, state %s", j->uuid,
	         how[0] ? " by " : "", how,
	         op == GOP_PURGE ? "purged" : "released");
}

void
job_run(const struct launcher_cfg *cfg, struct job *j)
{
	if (j->kind == JOB_START) {
		job_start(cfg, j);
	} else {
		job_stop(cfg, j);
	}
}
