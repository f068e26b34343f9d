/*
 * vms.c: EVE's three operations on our lifecycle.
 *
 *   launch    DomainStatus BOOTING -> wait for VtpmStatus READY (200, then
 *             RUNNING is published and EVE's paths are linked) or FAILED
 *             (424 with the launcher's reason)
 *   terminate DomainStatus HALTED -> wait for STOPPED (the launcher shut
 *             swtpm down and the guardian committed the state): 200
 *   purge     DomainStatus DELETED -> wait for the launcher to drop the
 *             VtpmStatus item and the guardian to publish PURGED: 200;
 *             then the DomainStatus item is removed
 *
 * Every DomainStatus the adapter publishes carries a per-VM sequence in
 * its reason, so a second BOOTING after a failure is a new publication
 * (the publisher drops unchanged items) and the launcher tries again.
 * A request waits on its VM's condition variable, which that VM's
 * VtpmStatus and VtpmStateHealth events broadcast, and only for events
 * that came after its own publication. One request per VM at a time; VMs are
 * independent.
 */
#include "evecompat.h"

#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vm {
	char     uuid[UUID_LEN];
	bool     busy;      /* a request for this VM runs */
	bool     published; /* our DomainStatus item exists */
	int      dom_state; /* what we published */
	uint64_t seq;       /* publications of this VM */

	bool               have_vt; /* the launcher's item exists */
	struct vtpm_status vt;
	uint64_t           vt_events;

	int      health; /* enum state_class, STATE_UNKNOWN when none */
	uint64_t health_events;

	/* this VM's events and its end of busy: only its own waiters wake
	 * (32 launches at once are not 32 wake-ups per event) */
	pthread_cond_t cv;
};

struct eve {
	struct eve_cfg     cfg;
	struct topic_pub  *pub;
	struct topic_sub  *vsub, *hsub;
	pthread_mutex_t    mu;
	pthread_condattr_t ca; /* CLOCK_MONOTONIC, for every VM's cv */
	struct vm        **vms;
	size_t             nvms, cap;
	bool               h_synced; /* a guardian publishes VtpmStateHealth */
};

static struct vm *
vm_find(struct eve *e, const char *uuid)
{
	for (size_t i = 0; i < e->nvms; i++) {
		if (strcmp(e->vms[i]->uuid, uuid) == 0) {
			return e->vms[i];
		}
	}
	return NULL;
}

/* with mu held; NULL when out of memory */
static struct vm *
vm_get(struct eve *e, const char *uuid)
{
	struct vm *v = vm_find(e, uuid);

	if (v != NULL) {
		return v;
	}
	if (e->nvms == e->cap) {
		size_t      ncap = e->cap ? e->cap * 2 : 64;
		struct vm **n = realloc(e->vms, ncap * sizeof(*n));

		if (n == NULL) {
			return NULL;
		}
		e->vms = n;
		e->cap = ncap;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		return NULL;
	}
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	v->health = STATE_UNKNOWN;
	pthread_cond_init(&v->cv, &e->ca);
	e->vms[e->nvms++] = v;
	return v;
}

/* ---- subscriptions (eve_step's thread) ---- */

static void
vt_set(void *arg, const char *key, const void *item)
{
	struct eve *e = arg;
	struct vm  *v;

	pthread_mutex_lock(&e->mu);
	if ((v = vm_get(e, key)) != NULL) {
		v->vt = *(const struct vtpm_status *) item;
		v->have_vt = true;
		v->vt_events++;
		pthread_cond_broadcast(&v->cv);
	}
	pthread_mutex_unlock(&e->mu);
}

static void
vt_del(void *arg, const char *key)
{
	struct eve *e = arg;
	struct vm  *v;

	pthread_mutex_lock(&e->mu);
	if ((v = vm_find(e, key)) != NULL) {
		v->have_vt = false;
		v->vt_events++;
		pthread_cond_broadcast(&v->cv);
	}
	pthread_mutex_unlock(&e->mu);
}

static void
h_set(void *arg, const char *key, const void *item)
{
	const struct vtpm_state_health *h = item;
	struct eve                     *e = arg;
	struct vm                      *v;

	pthread_mutex_lock(&e->mu);
	if ((v = vm_get(e, key)) != NULL) {
		v->health = h->classification;
		v->health_events++;
		pthread_cond_broadcast(&v->cv);
	}
	pthread_mutex_unlock(&e->mu);
}

static void
h_del(void *arg, const char *key)
{
	struct eve *e = arg;
	struct vm  *v;

	pthread_mutex_lock(&e->mu);
	if ((v = vm_find(e, key)) != NULL) {
		v->health = STATE_UNKNOWN;
		v->health_events++;
		pthread_cond_broadcast(&v->cv);
	}
	pthread_mutex_unlock(&e->mu);
}

static void
wake_all(struct eve *e)
{
	for (size_t i = 0; i < e->nvms; i++) {
		pthread_cond_broadcast(&e->vms[i]->cv);
	}
}

static void
on_sync(void *arg)
{
	struct eve *e = arg;

	pthread_mutex_lock(&e->mu);
	wake_all(e);
	pthread_mutex_unlock(&e->mu);
}

static void
h_sync(void *arg)
{
	struct eve *e = arg;

	pthread_mutex_lock(&e->mu);
	e->h_synced = true;
	wake_all(e);
	pthread_mutex_unlock(&e->mu);
}

int
eve_fds(struct eve *e, int fds[2])
{
	fds[0] = topic_sub_fd(e->vsub);
	fds[1] = topic_sub_fd(e->hsub);
	return 2;
}

int
eve_step(struct eve *e)
{
	int a = topic_sub_process(e->vsub);
	int b = topic_sub_process(e->hsub);

	if (a < 0 || (b >= 0 && b < a)) {
		a = b;
	}
	return a;
}

/* ---- EVE's paths ---- */

/* <everun>/<uuid><suffix> -> target, replaced atomically. A target that
 * really lies below everun (the EVE profile puts our run directory inside
 * the shared /run/swtpm) is linked relative, so the link resolves in the
 * domain manager's and QEMU's mount namespace as well as in ours. */
static int
link_put(struct eve *e, const char *uuid, const char *suffix,
         const char *target, char *err, size_t errlen)
{
	char   dst[PATH_LEN], tmp[PATH_LEN + 16];
	char   rt[PATH_LEN], re[PATH_LEN];
	size_t n;

	if (realpath(target, rt) != NULL &&
	    realpath(e->cfg.everun, re) != NULL && (n = strlen(re)) > 0 &&
	    strncmp(rt, re, n) == 0 && rt[n] == '/') {
		target = rt + n + 1;
	}

	if (path_join(dst, sizeof(dst), "%s/%s%s", e->cfg.everun, uuid,
	              suffix) < 0 ||
	    path_join(tmp, sizeof(tmp), "%s.tmp", dst) < 0) {
		strfmt(err, errlen, "%s: path too long", uuid);
		return -1;
	}
	(void) unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, dst) < 0) {
		strfmt(err, errlen, "link %s -> %s: %s", dst, target,
		       strerror(errno));
		(void) unlink(tmp);
		return -1;
	}
	return 0;
}

static void
links_drop(struct eve *e, const char *uuid)
{
	static const char *const sfx[] = {".ctrl.sock", ".pid"};
	char                     p[PATH_LEN];

	for (size_t i = 0; i < 2; i++) {
		if (path_join(p, sizeof(p), "%s/%s%s", e->cfg.everun, uuid,
		              sfx[i]) == 0 &&
		    unlink(p) < 0 && errno != ENOENT) {
			log_warn("%s: remove %s", uuid, p);
		}
	}
}

/* EVE's QEMU attaches to <uuid>.ctrl.sock and kvm.go waits for <uuid>.pid:
 * both point at the launcher's files (the pid file disappears with swtpm,
 * so a dangling link reads as "not running", as it should). */
static int
links_put(struct eve *e, const struct vtpm_status *vt, char *err, size_t errlen)
{
	char        pidf[PATH_LEN];
	const char *slash = strrchr(vt->ctrl_socket, '/');

	if (vt->ctrl_socket[0] != '/' || slash == NULL ||
	    path_join(pidf, sizeof(pidf), "%.*s/%s.pid",
	              (int) (slash - vt->ctrl_socket), vt->ctrl_socket,
	              vt->uuid) < 0) {
		strfmt(err, errlen,
		       "launcher gave no usable control socket "
		       "(\"%s\")",
		       vt->ctrl_socket);
		return -1;
	}
	if (link_put(e, vt->uuid, ".ctrl.sock", vt->ctrl_socket, err, errlen) <
	        0 ||
	    link_put(e, vt->uuid, ".pid", pidf, err, errlen) < 0) {
		return -1;
	}
	return 0;
}

/* ---- publishing ---- */

/* with mu held; the publisher is thread-safe and does not call back */
static int
publish(struct eve *e, struct vm *v, int state, const char *why)
{
	struct domain_status d;

	memset(&d, 0, sizeof(d));
	snprintf(d.uuid, sizeof(d.uuid), "%s", v->uuid);
	d.state = state;
	d.vtpm.enabled = true;
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "2.0");
	d.vtpm.model = e->cfg.model;
	d.vtpm.mode = VTPM_MODE_PERSISTENT;
	d.vtpm.ek = true;
	if (state == DOM_BOOTING) {
		v->seq++;
	}
	strfmt(d.reason, sizeof(d.reason), "EVE API: %s #%llu", why,
	       (unsigned long long) v->seq);
	if (topic_pub_set(e->pub, v->uuid, &d) < 0) {
		return -1;
	}
	v->published = true;
	v->dom_state = state;
	return 0;
}

static bool
pid_alive(int64_t pid)
{
	return pid > 0 && (kill((pid_t) pid, 0) == 0 || errno == EPERM);
}

static void
deadline_of(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* wait for v's next event until the deadline; false when it passed */
static bool
wait_until(struct eve *e, struct vm *v, const struct timespec *dl)
{
	return pthread_cond_timedwait(&v->cv, &e->mu, dl) != ETIMEDOUT;
}

static const char *const vt_names[] = {"STARTING", "READY", "FAILED",
                                       "STOPPED"};

static const char *
vt_name(const struct vm *v)
{
	if (!v->have_vt) {
		return "no status yet";
	}
	return v->vt.state >= 0 && v->vt.state <= VTPM_STOPPED
	           ? vt_names[v->vt.state]
	           : "?";
}

static size_t
active_vms(const struct eve *e)
{
	size_t n = 0;

	for (size_t i = 0; i < e->nvms; i++) {
		n += e->vms[i]->published &&
		     (e->vms[i]->dom_state == DOM_BOOTING ||
		      e->vms[i]->dom_state == DOM_RUNNING);
	}
	return n;
}

static int
do_launch(struct eve *e, struct vm *v, const struct timespec *dl, char *body,
          size_t len)
{
	char     err[REASON_LEN + 64];
	uint64_t seen;

	if (v->published &&
	    (v->dom_state == DOM_BOOTING || v->dom_state == DOM_RUNNING) &&
	    v->have_vt && v->vt.state == VTPM_READY && pid_alive(v->vt.pid)) {
		if (links_put(e, &v->vt, err, sizeof(err)) < 0) {
			strfmt(body, len, "vTPM launch of %s failed: %s",
			       v->uuid, err);
			return 424;
		}
		log_info("%s: launch: already running (swtpm pid %lld)",
		         v->uuid, (long long) v->vt.pid);
		return 200;
	}
	if (e->cfg.max_vms > 0 &&
	    !(v->published &&
	      (v->dom_state == DOM_BOOTING || v->dom_state == DOM_RUNNING)) &&
	    active_vms(e) >= (size_t) e->cfg.max_vms) {
		strfmt(body, len,
		       "vTPM max number of SWTPM instances reached "
		       "%d",
		       e->cfg.max_vms);
		return 429;
	}
	seen = v->vt_events;
	if (publish(e, v, DOM_BOOTING, "launch") < 0) {
		strfmt(body, len,
		       "vTPM launch of %s failed: cannot publish "
		       "DomainStatus",
		       v->uuid);
		return 424;
	}
	for (;;) {
		if (v->vt_events > seen && v->have_vt &&
		    v->vt.state == VTPM_READY) {
			break;
		}
		if (v->vt_events > seen && v->have_vt &&
		    v->vt.state == VTPM_FAILED) {
			strfmt(body, len, "vTPM launch of %s failed: %s",
			       v->uuid, v->vt.reason);
			log_warnx("%s: launch: 424: %s", v->uuid, v->vt.reason);
			return 424;
		}
		if (!wait_until(e, v, dl)) {
			strfmt(body, len,
			       "vTPM launch of %s: not ready after "
			       "%u ms (launcher: %s%s%s); EVE boots the VM "
			       "without a TPM, a later launch answers 200 "
			       "when it is ready",
			       v->uuid, e->cfg.answer_ms, vt_name(v),
			       v->have_vt && v->vt.reason[0] ? ": " : "",
			       v->have_vt ? v->vt.reason : "");
			log_warnx("%s: launch: 424: no answer from the "
			          "launcher in %u ms",
			          v->uuid, e->cfg.answer_ms);
			return 424;
		}
	}
	if (links_put(e, &v->vt, err, sizeof(err)) < 0) {
		strfmt(body, len, "vTPM launch of %s failed: %s", v->uuid, err);
		return 424;
	}
	(void) publish(e, v, DOM_RUNNING, "launched");
	log_info("%s: launch: READY, swtpm pid %lld, %s%s%s", v->uuid,
	         (long long) v->vt.pid,
	         v->vt.encrypted ? "encrypted" : "NOT encrypted",
	         v->vt.reason[0] ? ": " : "", v->vt.reason);
	return 200;
}

static int
do_terminate(struct eve *e, struct vm *v, const struct timespec *dl, char *body,
             size_t len)
{
	if (!v->published ||
	    (v->dom_state != DOM_BOOTING && v->dom_state != DOM_RUNNING)) {
		strfmt(body, len,
		       "vTPM terminate request failed, SWTPM "
		       "instance with id %s not found",
		       v->uuid);
		return 404;
	}
	if (publish(e, v, DOM_HALTED, "terminate") < 0) {
		strfmt(body, len,
		       "vTPM terminate of %s failed: cannot "
		       "publish DomainStatus",
		       v->uuid);
		return 424;
	}
	while (v->have_vt && v->vt.state != VTPM_STOPPED) {
		if (!wait_until(e, v, dl)) {
			strfmt(body, len,
			       "vTPM terminate of %s: not stopped "
			       "after %u ms (launcher: %s)",
			       v->uuid, e->cfg.answer_ms, vt_name(v));
			return 424;
		}
	}
	links_drop(e, v->uuid);
	log_info("%s: terminate: stopped, state committed", v->uuid);
	return 200;
}

static int
do_purge(struct eve *e, struct vm *v, const struct timespec *dl, char *body,
         size_t len)
{
	uint64_t seen_h = v->health_events;

	if (publish(e, v, DOM_DELETED, "purge") < 0) {
		strfmt(body, len,
		       "vTPM purge of %s failed: cannot publish "
		       "DomainStatus",
		       v->uuid);
		return 424;
	}
	/* the launcher drops its item after the guardian's PURGE answered;
	 * without a guardian (no VtpmStateHealth publisher) that is all */
	while (v->have_vt || (e->h_synced && !(v->health_events > seen_h &&
	                                       v->health == STATE_PURGED))) {
		if (!wait_until(e, v, dl)) {
			strfmt(body, len,
			       "vTPM purge of %s: not purged after "
			       "%u ms (launcher: %s; guardian: %s)",
			       v->uuid, e->cfg.answer_ms, vt_name(v),
			       v->health == STATE_PURGED ? "purged"
			                                 : "no purge yet");
			return 424;
		}
	}
	if (topic_pub_delete(e->pub, v->uuid) == 0) {
		v->published = false;
	}
	links_drop(e, v->uuid);
	log_info("%s: purge: state removed", v->uuid);
	return 200;
}

int
eve_handle(struct eve *e, const struct eve_req *req, char *body, size_t bodylen)
{
	struct timespec dl;
	struct vm      *v;
	int             code;

	deadline_of(&dl, e->cfg.answer_ms);
	body[0] = '\0';
	pthread_mutex_lock(&e->mu);
	if ((v = vm_get(e, req->uuid)) == NULL) {
		pthread_mutex_unlock(&e->mu);
		strfmt(body, bodylen, "vTPM %s of %s: out of memory",
		       eve_op_name(req->op), req->uuid);
		return 424;
	}
	while (v->busy) {
		if (!wait_until(e, v, &dl)) {
			pthread_mutex_unlock(&e->mu);
			strfmt(body, bodylen,
			       "vTPM %s of %s: an earlier "
			       "request for this VM still runs after %u ms",
			       eve_op_name(req->op), req->uuid,
			       e->cfg.answer_ms);
			return 424;
		}
	}
	v->busy = true;
	switch (req->op) {
	case EVE_LAUNCH:
		code = do_launch(e, v, &dl, body, bodylen);
		break;
	case EVE_TERMINATE:
		code = do_terminate(e, v, &dl, body, bodylen);
		break;
	default:
		code = do_purge(e, v, &dl, body, bodylen);
		break;
	}
	v->busy = false;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&e->mu);
	return code;
}

/* ---- open / close ---- */

static void
adopt_one(void *arg, const char *key, const void *item)
{
	const struct vtpm_status *vt = item;
	struct eve               *e = arg;
	struct vm                *v;
	char                      err[256];

	if (vt->state != VTPM_READY || (v = vm_get(e, key)) == NULL) {
		return;
	}
	if (publish(e, v, DOM_RUNNING, "adopted after restart") < 0 ||
	    links_put(e, vt, err, sizeof(err)) < 0) {
		log_warnx("%s: cannot take over the running vTPM", key);
		return;
	}
	log_info("%s: running vTPM taken over (swtpm pid %lld)", key,
	         (long long) vt->pid);
}

int
eve_open(struct eve **ep, const struct eve_cfg *cfg, unsigned adopt_ms,
         char *err, size_t errlen)
{
	static const struct topic_sub_cb vcb = {vt_set, vt_del, on_sync};
	static const struct topic_sub_cb hcb = {h_set, h_del, h_sync};
	struct eve                      *e;
	uint64_t                         until = now_ms() + adopt_ms;

	*ep = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	e->cfg = *cfg;
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&e->ca);
	pthread_condattr_setclock(&e->ca, CLOCK_MONOTONIC);
	if (mkdir_p(cfg->everun, 0755) < 0) {
		strfmt(err, errlen, "mkdir %s: %s", cfg->everun,
		       strerror(errno));
		goto fail;
	}
	if (topic_sub_open(&e->vsub, cfg->rundir, MSG_VTPM_STATUS, &vcb, e) <
	        0 ||
	    topic_sub_open(&e->hsub, cfg->rundir, MSG_VTPM_STATE_HEALTH, &hcb,
	                   e) < 0) {
		strfmt(err, errlen,
		       "cannot subscribe to VtpmStatus and "
		       "VtpmStateHealth in %s",
		       cfg->rundir);
		goto fail;
	}
	/* the launcher's view first: what runs now is taken over below */
	while (!topic_sub_synced(e->vsub) && now_ms() < until) {
		topic_sub_run(e->vsub, 50);
	}
	if (topic_pub_open(&e->pub, cfg->rundir, MSG_DOMAIN_STATUS, NULL) < 0) {
		strfmt(err, errlen,
		       "cannot publish DomainStatus in %s (does a "
		       "domain manager run there already?)",
		       cfg->rundir);
		goto fail;
	}
	pthread_mutex_lock(&e->mu);
	if (topic_sub_synced(e->vsub)) {
		topic_sub_foreach(e->vsub, adopt_one, e);
	} else {
		log_info("no launcher view after %u ms: nothing to take over",
		         adopt_ms);
	}
	pthread_mutex_unlock(&e->mu);
	*ep = e;
	return 0;
fail:
	eve_close(e);
	return -1;
}

void
eve_close(struct eve *e)
{
	if (e == NULL) {
		return;
	}
	if (e->pub != NULL) {
		topic_pub_close(e->pub);
	}
	if (e->vsub != NULL) {
		topic_sub_close(e->vsub);
	}
	if (e->hsub != NULL) {
		topic_sub_close(e->hsub);
	}
	for (size_t i = 0; i < e->nvms; i++) {
		pthread_cond_destroy(&e->vms[i]->cv);
		free(e->vms[i]);
	}
	free(e->vms);
	pthread_condattr_destroy(&e->ca);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
