/*
 * upgrade.c: a plain persistent state found while a key is available is
 * encrypted in place before the VM runs on it.
 *
 * swtpm cannot read a plain state with a key, and has no re-key command;
 * its control channel moves a whole state blob, though:
 *   1. a copy of the plain file in <state>/.upgrade-plain/; swtpm without
 *      a key on it, CMD_INIT, CMD_GET_STATEBLOB (permanent): the TPM as
 *      libtpms holds it;
 *   2. swtpm with the key on <state>/.upgrade/ (empty), CMD_STOP,
 *      CMD_SET_STATEBLOB, CMD_INIT: swtpm writes that same state, now
 *      encrypted;
 *   3. swtpm with the key on it once more: CMD_INIT must read it (a
 *      running TPM's blob is not byte-stable, so no byte comparison);
 *   4. guardian UPGRADE: the encrypted file becomes the current generation
 *      (crash-safe, pkg/vtpm/guardian/upgrade.c).
 * Until 4 the plain state is untouched; a crash anywhere leaves it, and
 * the next start upgrades again. The plain blob lives in memory that is
 * wiped before it is freed.
 */
#include "launcher.h"
#include "log.h"
#include "swtpm_ctrl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTRL_MS 5000 /* a control exchange on a swtpm of ours */

static void
wipe_free(uint8_t *b, size_t len)
{
	if (b != NULL) {
		explicit_bzero(b, len);
		free(b);
	}
}

/* The permanent state of the running swtpm of uuid; with stop_set, first
 * CMD_STOP + CMD_SET_STATEBLOB(set) + CMD_INIT. */
static int
ctrl_state(const struct launcher_cfg *cfg, const char *uuid, const uint8_t *set,
           size_t setlen, uint8_t **blob, size_t *len, char *err, size_t errlen)
{
	char        ctrl[SOCK_LEN];
	uint32_t    res = 0;
	int         fd, rc = -1;
	const char *what = "connect";

	*blob = NULL;
	if (spawn_paths(cfg, uuid, ctrl, NULL, NULL, sizeof(ctrl)) < 0 ||
	    (fd = swtpm_ctrl_connect(ctrl, CTRL_MS)) < 0) {
		strfmt(err, errlen, "upgrade: control socket of %s: %s", uuid,
		       strerror(errno));
		return -1;
	}
	if (set != NULL) {
		if ((what = "CMD_STOP", swtpm_ctrl_stop(fd, &res) < 0) ||
		    res != 0 ||
		    (what = "CMD_SET_STATEBLOB",
		     swtpm_ctrl_set_state(fd, SWTPM_BLOB_PERMANENT, set, setlen,
		                          &res) < 0) ||
		    res != 0 ||
		    (what = "CMD_INIT", swtpm_ctrl_init(fd, 0, &res) < 0) ||
		    res != 0) {
			goto out;
		}
	}
	what = "CMD_GET_STATEBLOB";
	if (swtpm_ctrl_get_state(fd, SWTPM_BLOB_PERMANENT, blob, len, &res) <
	        0 ||
	    res != 0) {
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		strfmt(err, errlen, "upgrade: %s on %s: %s", what, ctrl,
		       res != 0 ? "TPM error" : strerror(errno));
		if (res != 0) {
			strfmt(err, errlen,
			       "upgrade: %s on %s: TPM result 0x%x", what, ctrl,
			       res);
		}
	}
	close(fd);
	return rc;
}

/* Run swtpm on dir (with key or not), then ctrl_state. */
static int
run_state(const struct launcher_cfg *cfg, const char *uuid, const char *dir,
          const uint8_t *key, const uint8_t *set, size_t setlen, uint8_t **blob,
          size_t *len, char *err, size_t errlen)
{
	pid_t pid = 0;
	int   pidfd = -1, rc;
	bool  init_failed = false;

	*blob = NULL;
	if (spawn_start(cfg, uuid, dir, key, &pid, &pidfd, &init_failed, err,
	                errlen) < 0) {
		job_kill(&pid, &pidfd);
		return -1;
	}
	rc = ctrl_state(cfg, uuid, set, setlen, blob, len, err, errlen);
	job_kill(&pid, &pidfd); /* its state file is complete: swtpm renames */
	sup_cleanup_files(cfg, uuid);
	return rc;
}

static int
copy_in(const struct launcher_cfg *cfg, const char *from, const char *to,
        char *err, size_t errlen)
{
	char  *buf;
	size_t len;
	int    rc = 0;

	if (read_file(from, SWTPM_BLOB_MAX, &buf, &len) < 0) {
		strfmt(err, errlen, "upgrade: read %s: %s", from,
		       strerror(errno));
		return -1;
	}
	if (durable_write(to, buf, len, 0600) < 0 ||
	    (cfg->runas && chown(to, cfg->swtpm_uid, cfg->swtpm_gid) < 0)) {
		strfmt(err, errlen, "upgrade: write %s: %s", to,
		       strerror(errno));
		rc = -1;
	}
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

int
upgrade_plain(const struct launcher_cfg *cfg, const char *uuid,
              const char *state_dir, const uint8_t *key,
              struct guardian_rep *rep, char *err, size_t errlen)
{
	char     src[PATH_LEN], enc[PATH_LEN], from[PATH_LEN], to[PATH_LEN];
	uint8_t *plain = NULL, *back = NULL, *none = NULL;
	size_t   plen = 0, blen = 0, nlen = 0;
	int      rc = -1;

	if (path_join(src, sizeof(src), "%s/%s", state_dir, UPGRADE_SRC_DIR) <
	        0 ||
	    path_join(enc, sizeof(enc), "%s/%s", state_dir, UPGRADE_DIR) < 0 ||
	    path_join(from, sizeof(from), "%s/tpm2-00.permall", state_dir) <
	        0 ||
	    path_join(to, sizeof(to), "%s/tpm2-00.permall", src) < 0) {
		strfmt(err, errlen, "upgrade: %s: path too long", state_dir);
		return -1;
	}
	(void) remove_tree(src);
	(void) remove_tree(enc);
	if (guard_mkdir(cfg, src, err, errlen) < 0 ||
	    guard_mkdir(cfg, enc, err, errlen) < 0 ||
	    copy_in(cfg, from, to, err, errlen) < 0) {
		goto out;
	}
	/* 1: the plain TPM's state */
	if (run_state(cfg, uuid, src, NULL, NULL, 0, &plain, &plen, err,
	              errlen) < 0) {
		goto out;
	}
	(void) remove_tree(src);
	crash_point("upgrade-read");
	/* 2: the same state written under the key (the fresh TPM the first
	 * CMD_INIT makes is replaced at once) */
	if (run_state(cfg, uuid, enc, key, plain, plen, &none, &nlen, err,
	              errlen) < 0) {
		goto out;
	}
	/* 3: read back under the key */
	if (run_state(cfg, uuid, enc, key, NULL, 0, &back, &blen, err, errlen) <
	    0) {
		goto out;
	}
	/* a running TPM's blob is not byte-stable (clock, orderly data);
	 * what counts is that the key opens it and the guest finds its
	 * objects: CMD_INIT under the key succeeded */
	if (blen == 0) {
		strfmt(err, errlen,
		       "upgrade: the encrypted state in %s is empty", enc);
		goto out;
	}
	crash_point("upgrade-staged");
	/* 4 */
	if (guard_op(cfg, GOP_UPGRADE, uuid, VTPM_MODE_PERSISTENT, true, rep,
	             err, errlen) < 0) {
		goto out;
	}
	if (!rep->encrypted || rep->classification != STATE_UPGRADED) {
		strfmt(err, errlen, "upgrade: guardian answered %s%s",
		       state_class_name(rep->classification),
		       rep->encrypted ? "" : ", not encrypted");
		goto out;
	}
	rc = 0;
out:
	wipe_free(plain, plen);
	wipe_free(back, blen);
	wipe_free(none, nlen);
	if (rc < 0) {
		(void) remove_tree(src);
		(void) remove_tree(enc);
	}
	return rc;
}
