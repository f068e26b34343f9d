/*
 * loop.c: the launcher's event loop. One thread owns every struct vm; it
 * polls the DomainStatus subscription, the worker pool's eventfd and the
 * pidfd of every running swtpm, and publishes VtpmStatus.
 */
#include "launcher.h"
#include "log.h"
#include "pubsub.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct launcher {
	struct launcher_cfg *cfg;
	struct topic_pub    *pub;
	struct topic_sub    *sub;
	struct pool         *pool;
	struct vm          **vms;
	size_t               nvms, cap;
};

static struct vm *
vm_find(struct launcher *l, const char *uuid)
{
	for (size_t i = 0; i < l->nvms; i++) {
		if (strcmp(l->vms[i]->uuid, uuid) == 0) {
			return l->vms[i];
		}
	}
	return NULL;
}

static struct vm *
vm_get(struct launcher *l, const char *uuid)
{
	struct vm *vm = vm_find(l, uuid);

	if (vm != NULL) {
		return vm;
	}
	if (l->nvms == l->cap) {
		size_t      cap = l->cap ? l->cap * 2 : 64;
		struct vm **v = realloc(l->vms, cap * sizeof(*v));
		if (v == NULL) {
			return NULL;
		}
		l->vms = v;
		l->cap = cap;
	}
	if ((vm = malloc(sizeof(*vm))) == NULL) {
		return NULL;
	}
	vm_init(vm, uuid);
	l->vms[l->nvms++] = vm;
	return vm;
}

/* drop a VM that has nothing left: no domain, no process, no item */
static void
vm_gc(struct launcher *l, struct vm *vm)
{
	if (vm->have_dom || vm->busy || vm->phase != VP_IDLE || vm->published ||
	    vm->prepared) {
		return;
	}
	for (size_t i = 0; i < l->nvms; i++) {
		if (l->vms[i] == vm) {
			l->vms[i] = l->vms[--l->nvms];
			free(vm);
			return;
		}
	}
}

static void
publish(struct launcher *l, struct vm *vm)
{
	if (topic_pub_set(l->pub, vm->uuid, &vm->st) < 0) {
		log_warnx("%s: cannot publish VtpmStatus %s", vm->uuid,
		          vtpm_state_name(vm->st.state));
		return;
	}
	vm->published = true;
}

static void
unpublish(struct launcher *l, struct vm *vm)
{
	if (vm->published) {
		(void) topic_pub_delete(l->pub, vm->uuid);
		vm->published = false;
	}
}

static void
submit(struct launcher *l, struct vm *vm, int kind)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		log_warnx("%s: out of memory for a job", vm->uuid);
		return;
	}
	j->kind = kind;
	j->vm = vm;
	memcpy(j->uuid, vm->uuid, sizeof(j->uuid));
	vm_status_base(vm, &j->st,
	               kind == JOB_START ? VTPM_STARTING : VTPM_STOPPED);
	memcpy(j->name, j->st.name, sizeof(j->name));
	j->model = j->st.model;
	j->mode = kind == JOB_START ? j->st.mode : vm->st.mode;
	j->ek = vm->have_dom ? vm->dom.vtpm.ek : VTPM_EK_CERT;
	j->stop_op = vm->want_stop;
	j->prepared = vm->prepared;
	j->pid = vm->pid;
	j->pidfd = vm->pidfd;
	j->child = vm->child;
	if (kind == JOB_STOP) {
		j->st.health = vm->st.health;
	}
	j->pidfd = kind == JOB_STOP && vm->phase == VP_RUNNING ? vm->pidfd : -1;
	vm->busy = true;
	if (kind == JOB_START) {
		vm->want_start = false;
		vm->t_start = now_ms();
		vm->st = j->st;
		publish(l, vm);
	} else {
		vm->want_stop = STOP_NONE;
		vm->pidfd = -1; /* the job closes it */
	}
	if (pool_submit(l->pool, j) < 0) {
		log_warnx("%s: %s job queued without a worker thread, retried "
		          "every second",
		          vm->uuid, kind == JOB_START ? "start" : "stop");
	}
}

static void
reconcile(struct launcher *l, struct vm *vm)
{
	int pub, act;

	act = vm_next_action(vm, &pub);
	if (pub > 0) {
		publish(l, vm);
	} else if (pub < 0) {
		unpublish(l, vm);
	}
	if (act == ACT_START) {
		log_info("%s: VM %s is booting: starting its vTPM (%s, %s)",
		         vm->uuid, vm->dom.name,
		         vtpm_model_name(vm->dom.vtpm.model),
		         vtpm_mode_name(vm->dom.vtpm.mode));
		submit(l, vm, JOB_START);
	} else if (act == ACT_STOP) {
		submit(l, vm, JOB_STOP);
	}
	vm_gc(l, vm);
}

static void
apply_done(struct launcher *l, struct job *j)
{
	struct vm *vm = j->vm;

	vm->busy = false;
	vm->prepared = j->prepared;
	if (j->kind == JOB_START) {
		vm->st = j->st;
		if (j->rc == 0) {
			vm->phase = VP_RUNNING;
			vm->pid = j->pid;
			vm->pidfd = j->pidfd;
			vm->child = j->child;
		}
		publish(l, vm);
	} else {
		vm->phase = VP_IDLE;
		vm->pid = 0;
		vm->pidfd = -1;
		if (vm->forget && vm->want_start == false) {
			unpublish(l, vm);
			vm->forget = false;
		} else {
			vm->st = j->st;
			publish(l, vm);
		}
	}
	free(j);
	reconcile(l, vm);
}

/* a running swtpm's pidfd became readable: it is gone */
static void
on_death(struct launcher *l, struct vm *vm)
{
	char desc[128];
	int  status = sup_reap(vm->pidfd, vm->child, desc, sizeof(desc));

	close(vm->pidfd);
	vm->pidfd = -1;
	vm->phase = VP_IDLE;
	sup_cleanup_files(l->cfg, vm->uuid);
	/* QEMU's CMD_SHUTDOWN at VM exit ends swtpm with status 0 */
	vm->st.state = status == 0 ? VTPM_STOPPED : VTPM_FAILED;
	snprintf(vm->st.reason, sizeof(vm->st.reason), "swtpm %d %s",
	         (int) vm->pid, desc);
	vm->st.pid = 0;
	if (status == 0) {
		log_info("%s: swtpm %d %s", vm->uuid, (int) vm->pid, desc);
	} else {
		log_warnx("%s: swtpm %d died: %s", vm->uuid, (int) vm->pid,
		          desc);
	}
	vm->pid = 0;
	publish(l, vm);
	reconcile(l, vm);
}

static void
on_set(void *arg, const char *key, const void *item)
{
	struct launcher *l = arg;
	struct vm       *vm;

	if ((vm = vm_get(l, key)) == NULL) {
		log_warnx("%s: out of memory", key);
		return;
	}
	vm_on_domain(vm, item);
	reconcile(l, vm);
}

static void
on_delete(void *arg, const char *key)
{
	struct launcher *l = arg;
	struct vm       *vm = vm_find(l, key);

	if (vm != NULL) {
		log_info("%s: DomainStatus item deleted: stopping, not purging",
		         key);
		vm_on_domain(vm, NULL);
		reconcile(l, vm);
	}
}

/* first snapshot: adopted swtpms of VMs the domain manager no longer
 * lists are stopped (not purged) */
static void
on_sync(void *arg)
{
	struct launcher *l = arg;

	log_info("DomainStatus synchronized: %zu VMs known", l->nvms);
	for (size_t i = l->nvms; i-- > 0;) {
		struct vm *vm = l->vms[i];
		if (!vm->have_dom) {
			vm_on_domain(vm, NULL);
			reconcile(l, vm);
		}
	}
}

static void
on_adopt(void *arg, const struct vtpm_status *st, pid_t pid, int pidfd)
{
	struct launcher *l = arg;
	struct vm       *vm = vm_get(l, st->uuid);

	if (vm == NULL) {
		close(pidfd);
		return;
	}
	vm->phase = VP_RUNNING;
	vm->pid = pid;
	vm->pidfd = pidfd;
	vm->child = false;
	vm->prepared = true;
	vm->st = *st;
	log_info("%s: adopted swtpm %d (%s)", st->uuid, (int) pid,
	         st->ctrl_socket);
	publish(l, vm);
}

/* Let others traverse (not list) dir: swtpm, as the swtpm uid, must
 * reach its files below it. */
static int
allow_traverse(const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb) < 0 ||
	    ((sb.st_mode & 0011) != 0011 &&
	     chmod(dir, (sb.st_mode & 07777) | 0011) < 0)) {
		log_warn("chmod %s", dir);
		return -1;
	}
	return 0;
}

/* Directories swtpm (as the swtpm uid) must reach. */
static int
make_dirs(struct launcher_cfg *cfg)
{
	char parent[PATH_LEN], *slash;

	if (mkdir_p(cfg->swtpm_dir, 0700) < 0 ||
	    mkdir_p(cfg->paths.ephemeral, 0700) < 0) {
		log_warn("mkdir %s", cfg->swtpm_dir);
		return -1;
	}
	if (!cfg->runas) {
		return 0;
	}
	/* <root>/run/vtpm and <root>/run: traverse-only for others */
	vm_strcpy(parent, cfg->paths.run, sizeof(parent));
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
		*slash = '\0';
		if (allow_traverse(parent) < 0) {
			return -1;
		}
	}
	if (allow_traverse(cfg->paths.run) < 0 ||
	    chown(cfg->swtpm_dir, cfg->swtpm_uid, cfg->swtpm_gid) < 0 ||
	    chown(cfg->paths.ephemeral, cfg->swtpm_uid, cfg->swtpm_gid) < 0) {
		log_warn("prepare %s for uid %d", cfg->swtpm_dir,
		         (int) cfg->swtpm_uid);
		return -1;
	}
	if (cfg->no_guardian && (allow_traverse(cfg->paths.persist) < 0 ||
	                         allow_traverse(cfg->paths.state) < 0)) {
		return -1;
	}
	return 0;
}

int
launcher_open(struct launcher **lp, struct launcher_cfg *cfg)
{
	static const struct topic_sub_cb cb = {on_set, on_delete, on_sync};
	struct launcher                 *l;
	struct peer_policy               pol;
	int                              n;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		return -1;
	}
	l->cfg = cfg;
	peer_policy_init(&pol);
	if (make_dirs(cfg) < 0 || sbx_open(cfg) < 0 || guard_open(cfg) < 0 ||
	    pool_open(&l->pool, cfg, cfg->max_parallel) < 0) {
		goto fail;
	}
	if (topic_pub_open(&l->pub, cfg->paths.run, MSG_VTPM_STATUS, &pol) <
	    0) {
		log_warnx("cannot publish VtpmStatus in %s", cfg->paths.run);
		goto fail;
	}
	if ((n = adopt_scan(cfg, on_adopt, l)) < 0) {
		log_warn("scan %s", cfg->swtpm_dir);
	} else if (n > 0) {
		log_info("adopted %d running swtpm processes", n);
	}
	if (topic_sub_open(&l->sub, cfg->paths.run, MSG_DOMAIN_STATUS, &cb, l) <
	    0) {
		log_warnx("cannot subscribe to DomainStatus in %s",
		          cfg->paths.run);
		goto fail;
	}
	/* every socket and directory is open: the rest goes */
	if (sbx_drop_caps(cfg) < 0) {
		goto fail;
	}
	*lp = l;
	return 0;
fail:
	launcher_close(l);
	return -1;
}

static void
take_done(struct launcher *l)
{
	struct job *j = pool_take_done(l->pool), *next;

	for (; j != NULL; j = next) {
		next = j->next;
		apply_done(l, j);
	}
}

/* Room for need poll entries; on -1 the old arrays stay. */
static int
grow_poll(struct pollfd **pfd, struct vm ***who, size_t *cap, size_t need)
{
	struct pollfd *np;
	struct vm    **nw;

	if (*cap >= need) {
		return 0;
	}
	np = calloc(need + 62, sizeof(*np));
	nw = calloc(need + 62, sizeof(*nw));
	if (np == NULL || nw == NULL) {
		free(np);
		free(nw);
		return -1;
	}
	free(*pfd);
	free(*who);
	*pfd = np;
	*who = nw;
	*cap = need + 62;
	return 0;
}

int
launcher_run(struct launcher *l, volatile sig_atomic_t *quit)
{
	struct pollfd *pfd = NULL;
	struct vm    **who = NULL;
	size_t         pcap = 0;

	while (!*quit) {
		int    timeout = topic_sub_process(l->sub);
		size_t n = 2;

		if (pool_retry(l->pool) < 0 &&
		    (timeout < 0 || timeout > 1000)) {
			timeout = 1000; /* jobs wait for a worker: retry */
		}
		if (grow_poll(&pfd, &who, &pcap, l->nvms + 2) < 0) {
			log_warnx(
			    "out of memory for %zu poll entries: watching "
			    "%zu swtpm processes",
			    l->nvms + 2, pcap > 2 ? pcap - 2 : 0);
			if (pcap < 2) {
				(void) poll(NULL, 0, 1000);
				continue;
			}
		}
		pfd[0] = (struct pollfd){topic_sub_fd(l->sub), POLLIN, 0};
		pfd[1] = (struct pollfd){pool_fd(l->pool), POLLIN, 0};
		for (size_t i = 0; i < l->nvms; i++) {
			struct vm *vm = l->vms[i];
			if (n < pcap && vm->phase == VP_RUNNING && !vm->busy &&
			    vm->pidfd >= 0) {
				who[n] = vm;
				pfd[n++] =
				    (struct pollfd){vm->pidfd, POLLIN, 0};
			}
		}
		if (poll(pfd, n, timeout) < 0) {
			if (errno != EINTR) {
				log_warn("poll");
			}
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			take_done(l);
		}
		for (size_t i = 2; i < n; i++) {
			/* a job may have taken the vm meanwhile: recheck */
			if ((pfd[i].revents & POLLIN) && !who[i]->busy &&
			    who[i]->pidfd == pfd[i].fd) {
				on_death(l, who[i]);
			}
		}
	}
	free(pfd);
	free(who);
	return 0;
}

/* Finish running jobs; with stop_on_exit, stop every swtpm. */
static void
drain(struct launcher *l)
{
	struct pollfd p = {pool_fd(l->pool), POLLIN, 0};

	while (pool_busy(l->pool) > 0) {
		(void) pool_retry(l->pool);
		if (poll(&p, 1, 1000) > 0) {
			take_done(l);
		}
	}
	take_done(l);
}

void
launcher_close(struct launcher *l)
{
	if (l == NULL) {
		return;
	}
	if (l->pool != NULL && l->pub != NULL) {
		drain(l);
		if (l->cfg->stop_on_exit) {
			for (size_t i = 0; i < l->nvms; i++) {
				struct vm *vm = l->vms[i];
				if (vm->phase == VP_RUNNING && !vm->busy) {
					vm->want_stop = STOP_RELEASE;
					submit(l, vm, JOB_STOP);
				}
			}
			drain(l);
			log_info("stopped every swtpm (--stop-on-exit)");
		} else {
			size_t running = 0;
			for (size_t i = 0; i < l->nvms; i++) {
				running += l->vms[i]->phase == VP_RUNNING;
			}
			log_info("exiting; %zu swtpm processes keep running "
			         "for the next launcher to adopt",
			         running);
		}
	}
	topic_sub_close(l->sub);
	topic_pub_close(l->pub);
	pool_close(l->pool);
	guard_close(l->cfg);
	sbx_close(l->cfg);
	for (size_t i = 0; i < l->nvms; i++) {
		if (l->vms[i]->pidfd >= 0) {
			close(l->vms[i]->pidfd);
		}
		free(l->vms[i]);
	}
	free(l->vms);
	free(l);
}
