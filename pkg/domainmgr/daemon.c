/*
 * daemon.c: the domain manager's event loop. One thread polls a signalfd
 * (SIGHUP reload, SIGTERM/SIGINT stop, SIGCHLD reap), an inotify watch on
 * the config's directory (editors and controllers replace the file by
 * rename, so the file itself cannot be watched) and the VtpmStatus
 * subscriber; after each event the lifecycle takes its steps.
 */
#include "domainmgr.h"

#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

struct dm_daemon {
	const struct dm_daemon_opts *o;
	struct topic_pub            *pub;
	struct topic_sub            *sub;
	struct dm                    dm;
	char                         dir[PATH_LEN];  /* config's directory */
	char                         base[PATH_LEN]; /* config's file name */
	bool                         have_config;    /* a good one was read */
	bool                         vtpm_changed;
	int                          sfd; /* signalfd */
	int                          ifd; /* inotify on the config's dir */
};

int
dm_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		log_warn("sigprocmask");
		return -1;
	}
	return 0;
}

/* ---- dm_ops: the real world ---- */

static int
op_publish(void *arg, const struct domain_status *ds)
{
	struct dm_daemon *d = arg;

	return topic_pub_set(d->pub, ds->uuid, ds);
}

static int
op_unpublish(void *arg, const char *uuid)
{
	struct dm_daemon *d = arg;

	return topic_pub_delete(d->pub, uuid);
}

static int
op_vtpm_get(void *arg, const char *uuid, struct vtpm_status *out)
{
	struct dm_daemon *d = arg;

	return topic_sub_get(d->sub, uuid, out);
}

static int
op_vm_start(void *arg, const struct dm_app *a, const char *ctrl, pid_t *pid,
            char *err, size_t errlen)
{
	struct dm_daemon *d = arg;

	return dm_qemu_spawn(&d->o->q, a, ctrl, pid, err, errlen);
}

static void
op_vm_signal(void *arg, const struct dm_app *a, bool force)
{
	(void) arg;
	if (a->vm_pid > 0 && kill(a->vm_pid, force ? SIGKILL : SIGTERM) < 0 &&
	    errno != ESRCH) {
		log_warn("app %s: kill %d", a->uuid, (int) a->vm_pid);
	}
}

/* ---- VtpmStatus: any change may let an app move on ---- */

static void
vt_set(void *arg, const char *key, const void *item)
{
	const struct vtpm_status *v = item;
	struct dm_daemon         *d = arg;

	log_debug("vtpm %s: %s %s", key, vtpm_state_name(v->state), v->reason);
	dm_vtpm_event(&d->dm, key);
	d->vtpm_changed = true;
}

static void
vt_del(void *arg, const char *key)
{
	struct dm_daemon *d = arg;

	log_debug("vtpm %s: item removed", key);
	dm_vtpm_event(&d->dm, key);
	d->vtpm_changed = true;
}

static void
vt_sync(void *arg)
{
	struct dm_daemon *d = arg;

	log_info("VtpmStatus synchronized (%zu items)",
	         topic_sub_count(d->sub));
	d->vtpm_changed = true;
}

/* ---- config ---- */

static void
reload(struct dm_daemon *d, const char *why)
{
	struct dmcfg cfg;
	char         err[512];
	size_t       nvalid;

	if (dmcfg_load(d->o->config, &cfg, err, sizeof(err)) < 0) {
		/* never tear anything down for a file we cannot read */
		log_warnx("%s (on %s); %s", err, why,
		          d->have_config ? "keeping the last good config"
		                         : "no config yet, waiting for one");
		return;
	}
	for (size_t i = 0; i < cfg.napps; i++) {
		if (!cfg.apps[i].valid) {
			log_warnx("config %s: %s", d->o->config,
			          cfg.apps[i].error);
		}
	}
	nvalid = cfg.napps - cfg.nerrors;
	log_info("config %s loaded (%s): %zu apps, %zu valid, %zu rejected",
	         d->o->config, why, cfg.napps, nvalid, cfg.nerrors);
	dm_apply_config(&d->dm, &cfg, now_ms());
	d->have_config = true;
	dmcfg_free(&cfg);
}

static int
watch_config(struct dm_daemon *d, int *ifd)
{
	char a[PATH_LEN], b[PATH_LEN];

	snprintf(a, sizeof(a), "%s", d->o->config);
	snprintf(b, sizeof(b), "%s", d->o->config);
	snprintf(d->dir, sizeof(d->dir), "%s", dirname(a));
	snprintf(d->base, sizeof(d->base), "%s", basename(b));
	*ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (*ifd < 0) {
		log_warn("inotify_init1");
		return -1;
	}
	/* a whole new file (rename over, or create+close) or a rewrite in
	 * place: both end in one of these events */
	if (inotify_add_watch(*ifd, d->dir,
	                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE |
	                          IN_MOVED_FROM) < 0) {
		log_warn("inotify_add_watch %s", d->dir);
		close(*ifd);
		*ifd = -1;
		return -1;
	}
	return 0;
}

/* Drain inotify; true when our file was (re)written or replaced. */
static bool
config_event(struct dm_daemon *d, int ifd)
{
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	bool    hit = false;
	ssize_t n;

	while ((n = read(ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *) p;

			if (ev->mask & IN_Q_OVERFLOW) {
				log_warnx("inotify %s: queue overflow, "
				          "rereading the config",
				          d->dir);
				hit = true;
			} else if (ev->len > 0 &&
			           strcmp(ev->name, d->base) == 0) {
				if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
					log_warnx("config %s removed; keeping "
					          "the last good config",
					          d->o->config);
				} else {
					hit = true;
				}
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN) {
		log_warn("read inotify %s", d->dir);
	}
	return hit;
}

static void
reap(struct dm_daemon *d)
{
	int   status;
	pid_t p;

	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		if (dm_vm_exited(&d->dm, p, status, now_ms()) < 0) {
			log_debug("reaped unknown child %d", (int) p);
		}
	}
}

/* On stop: the VMs are our children and cannot be adopted by a new
 * instance, so they go (the vTPMs stay with the launcher). */
static void
stop_vms(struct dm_daemon *d)
{
	uint64_t end;

	if (dm_stop_all(&d->dm, false) == 0) {
		return;
	}
	end = now_ms() + d->o->to.vm_kill_ms;
	while (dm_running_vms(&d->dm) > 0 && now_ms() < end) {
		sleep_ms(20);
		reap(d);
	}
	if (dm_stop_all(&d->dm, true) > 0) {
		while (dm_running_vms(&d->dm) > 0) {
			sleep_ms(20);
			reap(d);
		}
	}
}

int
dm_daemon_open(struct dm_daemon **dp, const struct dm_daemon_opts *o)
{
	struct topic_sub_cb cb = {vt_set, vt_del, vt_sync};
	struct dm_ops       ops;
	struct dm_daemon   *d;
	sigset_t            set;

	*dp = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	d->o = o;
	d->sfd = d->ifd = -1;
	ops = (struct dm_ops){.arg = d,
	                      .publish = op_publish,
	                      .unpublish = op_unpublish,
	                      .vtpm_get = op_vtpm_get,
	                      .vm_start = o->qemu ? op_vm_start : NULL,
	                      .vm_signal = op_vm_signal};
	dm_init(&d->dm, &ops, &o->to);

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	d->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sfd < 0) {
		log_warn("signalfd");
		goto fail;
	}
	if (watch_config(d, &d->ifd) < 0) {
		goto fail;
	}
	if (topic_pub_open(&d->pub, o->rundir, MSG_DOMAIN_STATUS, NULL) < 0) {
		log_warnx("cannot publish DomainStatus in %s", o->rundir);
		goto fail;
	}
	if (topic_sub_open(&d->sub, o->rundir, MSG_VTPM_STATUS, &cb, d) < 0) {
		log_warnx("cannot subscribe to VtpmStatus in %s", o->rundir);
		goto fail;
	}
	log_info("started: config %s, run %s, %s", o->config, o->rundir,
	         o->qemu ? "running VMs with QEMU" : "no VMs (no --qemu)");
	reload(d, "start");
	*dp = d;
	return 0;
fail:
	dm_daemon_close(d);
	return -1;
}

/* Read the signalfd: true when asked to stop; reaps and reloads. */
static bool
signal_event(struct dm_daemon *d)
{
	struct signalfd_siginfo si;
	bool                    hup = false, quit = false;

	while (read(d->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			hup = true;
			break;
		case SIGCHLD:
			break;
		default:
			log_info("signal %d: stopping", (int) si.ssi_signo);
			quit = true;
		}
	}
	reap(d); /* SIGCHLDs coalesce: always sweep */
	if (hup && !quit) {
		reload(d, "SIGHUP");
	}
	return quit;
}

int
dm_daemon_run(struct dm_daemon *d)
{
	bool quit = false;

	while (!quit) {
		struct pollfd pf[3];
		int           t_sub, t_dm, t;

		t_dm = dm_step(&d->dm, now_ms());
		t_sub = topic_sub_process(d->sub);
		if (d->vtpm_changed) {
			d->vtpm_changed = false;
			continue; /* step again with the new view */
		}
		t = t_sub;
		if (t_dm >= 0 && (t < 0 || t_dm < t)) {
			t = t_dm;
		}
		pf[0] = (struct pollfd){.fd = d->sfd, .events = POLLIN};
		pf[1] = (struct pollfd){.fd = d->ifd, .events = POLLIN};
		pf[2] = (struct pollfd){.fd = topic_sub_fd(d->sub),
		                        .events = POLLIN};
		if (poll(pf, pf[2].fd >= 0 ? 3 : 2, t) < 0 && errno != EINTR) {
			log_warn("poll");
			return -1;
		}
		if (pf[0].revents & POLLIN) {
			quit = signal_event(d);
		}
		if ((pf[1].revents & POLLIN) && config_event(d, d->ifd) &&
		    !quit) {
			reload(d, "file changed");
		}
	}
	return 0;
}

void
dm_daemon_close(struct dm_daemon *d)
{
	if (d == NULL) {
		return;
	}
	if (d->sub != NULL) {
		stop_vms(d); /* open got as far as loading the config */
	}
	topic_sub_close(d->sub);
	topic_pub_close(d->pub);
	if (d->ifd >= 0) {
		close(d->ifd);
	}
	if (d->sfd >= 0) {
		close(d->sfd);
	}
	dm_free(&d->dm);
	free(d);
}
