/*
 * guard.c: the launcher's two peers behind one interface: the state
 * guardian (GuardianRequest) and the key broker (KeyRelease), or, with
 * --no-guardian / --no-keybroker, plain stand-ins: a state directory made
 * here, and no key.
 *
 * Stand-in state directories: <persist>/swtpm/tpm-state-<uuid> (or
 * <run>/ephemeral/tpm-state-<uuid>, emptied on every prepare). RESTORE
 * fails (no backups without the guardian); RESET moves the old directory
 * aside (tpm-state-<uuid>.reset-<unix time>); RELEASE fsyncs the state
 * file and directory; PURGE removes the directory.
 */
#include "launcher.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENC_MARK ".launcher-encrypted" /* stand-in: state written keyed */

int
guard_open(struct launcher_cfg *cfg)
{
	if (!cfg->no_guardian &&
	    req_client_open(&cfg->guardian, cfg->paths.run, "guardian") < 0) {
		log_warnx("cannot open a client for service guardian");
		return -1;
	}
	if (!cfg->no_keybroker &&
	    req_client_open(&cfg->keybroker, cfg->paths.run, "keybroker") < 0) {
		log_warnx("cannot open a client for service keybroker");
		return -1;
	}
	return 0;
}

void
guard_close(struct launcher_cfg *cfg)
{
	req_client_close(cfg->guardian);
	req_client_close(cfg->keybroker);
	cfg->guardian = cfg->keybroker = NULL;
}

static int
local_dir(const struct launcher_cfg *cfg, const char *uuid, int mode, char *dir,
          size_t len)
{
	return paths_state_dir(&cfg->paths, mode == VTPM_MODE_EPHEMERAL, uuid,
	                       dir, len);
}

static int
local_mkdir(const struct launcher_cfg *cfg, const char *dir, char *err,
            size_t errlen)
{
	if (mkdir_p(dir, 0700) < 0) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (cfg->runas && chown(dir, cfg->swtpm_uid, cfg->swtpm_gid) < 0) {
		snprintf(err, errlen, "chown %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* PREPARE without the guardian: the directory (emptied first for
 * ephemeral state), new or normal, and a marker file that records
 * whether new state is written encrypted. */
static int
local_prepare(const struct launcher_cfg *cfg, const char *dir, int mode,
              bool encrypted, struct guardian_rep *rep, char *err,
              size_t errlen)
{
	char        f[PATH_LEN];
	struct stat sb;

	if (path_join(f, sizeof(f), "%s/tpm2-00.permall", dir) < 0) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	if (mode == VTPM_MODE_EPHEMERAL && remove_tree(dir) < 0 &&
	    errno != ENOENT) {
		snprintf(err, errlen, "empty %s: %s", dir, strerror(errno));
		return -1;
	}
	if (local_mkdir(cfg, dir, err, errlen) < 0) {
		return -1;
	}
	rep->classification = stat(f, &sb) == 0 ? STATE_NORMAL : STATE_NEW;
	if (path_join(f, sizeof(f), "%s/" ENC_MARK, dir) < 0) {
		return -1;
	}
	if (rep->classification == STATE_NEW) {
		(void) unlink(f);
		if (encrypted) {
			int fd = open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
			if (fd >= 0) {
				close(fd);
			}
		}
		rep->encrypted = encrypted;
	} else {
		rep->encrypted = stat(f, &sb) == 0;
	}
	return 0;
}

/* RESET without the guardian: the old directory is kept aside. */
static int
local_reset(const struct launcher_cfg *cfg, const char *uuid, const char *dir,
            bool encrypted, struct guardian_rep *rep, char *err, size_t errlen)
{
	char aside[PATH_LEN];

	if (path_join(aside, sizeof(aside), "%s.reset-%lld", dir,
	              (long long) time(NULL)) < 0) {
		return -1;
	}
	if (rename(dir, aside) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "rename %s: %s", dir, strerror(errno));
		return -1;
	}
	if (local_mkdir(cfg, dir, err, errlen) < 0) {
		return -1;
	}
	log_warnx("%s: state reset, old state kept in %s", uuid, aside);
	rep->classification = STATE_RESET;
	rep->encrypted = encrypted;
	return 0;
}

static int
local_op(const struct launcher_cfg *cfg, int op, const char *uuid, int mode,
         bool encrypted, struct guardian_rep *rep, char *err, size_t errlen)
{
	char        dir[STATE_DIR_LEN], f[PATH_LEN];
	struct stat sb;

	memcpy(rep->uuid, uuid, sizeof(rep->uuid));
	if (local_dir(cfg, uuid, mode, dir, sizeof(dir)) < 0 ||
	    path_join(f, sizeof(f), "%s/tpm2-00.permall", dir) < 0) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	memcpy(rep->state_dir, dir, sizeof(rep->state_dir));
	switch (op) {
	case GOP_PREPARE:
		if (local_prepare(cfg, dir, mode, encrypted, rep, err, errlen) <
		    0) {
			return -1;
		}
		break;
	case GOP_RESTORE:
		snprintf(err, errlen,
		         "no backup to restore (running without the guardian)");
		return -1;
	case GOP_RESET:
		if (local_reset(cfg, uuid, dir, encrypted, rep, err, errlen) <
		    0) {
			return -1;
		}
		break;
	case GOP_RELEASE:
		/* swtpm never fsyncs: make the last state durable */
		if (stat(f, &sb) == 0 &&
		    (fsync_path(f) < 0 || fsync_dir(dir) < 0)) {
			snprintf(err, errlen, "fsync %s: %s", f,
			         strerror(errno));
			return -1;
		}
		rep->classification = STATE_NORMAL;
		break;
	case GOP_PURGE:
		if (remove_tree(dir) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "remove %s: %s", dir,
			         strerror(errno));
			return -1;
		}
		rep->classification = STATE_PURGED;
		break;
	default:
		snprintf(err, errlen, "op %d not supported", op);
		return -1;
	}
	rep->ok = true;
	return 0;
}

/* A service whose socket file is missing is not running: say so at once
 * instead of waiting for the request timeout. */
static int
service_there(const struct launcher_cfg *cfg, const char *name, char *err,
              size_t errlen)
{
	char        path[PATH_LEN];
	struct stat sb;

	if (path_join(path, sizeof(path), "%s/%s.req", cfg->paths.run, name) <
	        0 ||
	    stat(path, &sb) < 0) {
		strfmt(err, errlen, "%s unavailable: %s/%s.req: %s", name,
		       cfg->paths.run, name, strerror(errno));
		return -1;
	}
	return 0;
}

int
guard_op(const struct launcher_cfg *cfg, int op, const char *uuid, int mode,
         bool encrypted, struct guardian_rep *rep, char *err, size_t errlen)
{
	struct guardian_req req;
	enum msg_type       rt;
	char                e[REASON_LEN];

	memset(rep, 0, sizeof(*rep));
	rep->classification = STATE_UNKNOWN;
	if (cfg->guardian == NULL) {
		return local_op(cfg, op, uuid, mode, encrypted, rep, err,
		                errlen);
	}
	if (service_there(cfg, "guardian", err, errlen) < 0) {
		return -1;
	}
	memset(&req, 0, sizeof(req));
	req.op = op;
	memcpy(req.uuid, uuid, sizeof(req.uuid));
	req.mode = mode;
	req.encrypted = encrypted;
	if (req_client_call(cfg->guardian, MSG_GUARDIAN_REQ, &req, &rt, rep,
	                    cfg->req_timeout_ms, e, sizeof(e)) < 0) {
		snprintf(err, errlen, "guardian unavailable: %s", e);
		return -1;
	}
	if (!rep->ok) {
		snprintf(err, errlen, "guardian %s failed: %s",
		         guardian_op_name(op), rep->reason);
		return -1;
	}
	return 0;
}

int
guard_key(const struct launcher_cfg *cfg, const char *uuid, uint8_t *key,
          char *why, size_t whylen)
{
	struct key_release_req  req;
	struct key_release_rep *rep;
	enum msg_type           rt;
	char                    e[REASON_LEN];
	int                     rc;

	if (cfg->keybroker == NULL) {
		snprintf(why, whylen, "no key broker (--no-keybroker)");
		return 0;
	}
	if (service_there(cfg, "keybroker", why, whylen) < 0) {
		return -1;
	}
	/* the reply holds the key: locked memory, wiped on free */
	if ((rep = secmem_alloc(sizeof(*rep))) == NULL) {
		snprintf(why, whylen, "keybroker: no locked memory for a key");
		return -1;
	}
	memset(&req, 0, sizeof(req));
	memcpy(req.uuid, uuid, sizeof(req.uuid));
	if (req_client_call(cfg->keybroker, MSG_KEY_RELEASE_REQ, &req, &rt, rep,
	                    cfg->req_timeout_ms, e, sizeof(e)) < 0) {
		snprintf(why, whylen, "keybroker unavailable: %s", e);
		rc = -1;
	} else if (rep->status == KEY_OK) {
		memcpy(key, rep->key, KEY_LEN);
		rc = 1;
	} else {
		snprintf(why, whylen, "keybroker: %s%s%s",
		         key_status_name(rep->status),
		         rep->reason[0] ? ": " : "", rep->reason);
		rc = 0;
	}
	secmem_free(rep, sizeof(*rep));
	return rc;
}
