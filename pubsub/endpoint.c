/* endpoint.c: ipc sockets that are 0600 and drop peers with unknown uids. */
#include "pubsub_int.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
peer_policy_init(struct peer_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->perms = 0600;
}

int
peer_policy_add(struct peer_policy *p, uid_t uid)
{
	if (p->nuids >= PEER_MAX_UIDS) {
		errno = ENOSPC;
		return -1;
	}
	p->uids[p->nuids++] = uid;
	return 0;
}

bool
peer_allowed(const struct peer_policy *p, uid_t uid)
{
	if (!p->only_listed && (uid == 0 || uid == geteuid())) {
		return true;
	}
	for (int i = 0; i < p->nuids; i++) {
		if (p->uids[i] == uid) {
			return true;
		}
	}
	return false;
}

int
endpoint_url(char *dst, size_t len, const char *rundir, const char *name)
{
	int n = snprintf(dst, len, "ipc://%s/%s", rundir, name);

	/* sun_path holds 108 bytes including the NUL */
	if (n < 0 || (size_t) n >= len || (size_t) n - 6 >= SOCK_LEN) {
		log_warnx("socket path %s/%s: longer than %d bytes", rundir,
		          name, SOCK_LEN - 1);
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static _Atomic uint64_t refusal_logged_ms;
static atomic_uint      refusals_unlogged;

/* Runs on an NNG thread before a new pipe is usable. */
static void
check_peer(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	const struct peer_policy *policy = arg;
	uint64_t                  uid = (uint64_t) -1;
	uint64_t                  pid = 0;
	nng_listener              l;
	char                      url[URL_LEN] = "?";
	size_t                    sz = sizeof(url);

	(void) ev;
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &uid) != 0) {
		return; /* not an ipc pipe (inproc in tests): nothing to check
		         */
	}
	if (peer_allowed(policy, (uid_t) uid)) {
		return;
	}
	nng_pipe_close(pipe);
	/* a refused dialer retries every few ms: log once a second */
	uint64_t now = now_ms(), last = atomic_load(&refusal_logged_ms);
	if (now - last < 1000 ||
	    !atomic_compare_exchange_strong(&refusal_logged_ms, &last, now)) {
		atomic_fetch_add(&refusals_unlogged, 1);
		return;
	}
	(void) nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &pid);
	l = nng_pipe_listener(pipe);
	(void) nng_listener_get(l, NNG_OPT_URL, url, &sz);
	log_warnx("%s: refused peer uid %llu pid %llu: uid not allowed "
	          "(%u more refusals since the last report)",
	          url, (unsigned long long) uid, (unsigned long long) pid,
	          atomic_exchange(&refusals_unlogged, 0));
}

int
endpoint_listen(nng_socket s, const char *url, const struct peer_policy *policy)
{
	nng_listener l;
	int          rv;

	if ((rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, check_peer,
	                          (void *) policy)) != 0 ||
	    (rv = nng_listener_create(&l, s, url)) != 0) {
		log_warnx("listen %s: %s", url, nng_strerror(rv));
		return -1;
	}
	if ((rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
	                               (int) policy->perms)) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		log_warnx("listen %s: %s", url, nng_strerror(rv));
		nng_listener_close(l);
		return -1;
	}
	return 0;
}

int
endpoint_dial(nng_socket s, const char *url)
{
	int rv;

	(void) nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20);
	(void) nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 500);
	rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		log_warnx("dial %s: %s", url, nng_strerror(rv));
		return -1;
	}
	return 0;
}

uid_t
endpoint_msg_uid(nng_msg *msg)
{
	uint64_t uid = (uint64_t) -1;
	nng_pipe p = nng_msg_get_pipe(msg);

	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0) {
		return (uid_t) -1;
	}
	return (uid_t) uid;
}

void
endpoint_msg_free_wipe(nng_msg *msg)
{
	if (msg != NULL) {
		explicit_bzero(nng_msg_body(msg), nng_msg_len(msg));
		nng_msg_free(msg);
	}
}

static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void
pin_mmap_threshold(void)
{
	(void) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

int
endpoint_msg_from_string(nng_msg **mp, const char *s, bool secret)
{
	size_t len = strlen(s);
	int    rv;

	*mp = NULL;
	/* 256 KiB is over glibc's mmap threshold, so the body is mmap'd and
	 * unmapped when NNG frees the sent message (unwiped): the secret goes
	 * back to the kernel, not to the heap. glibc raises the threshold
	 * after the first such free unless it is pinned: pin it. */
	if (secret) {
		pthread_once(&secret_once, pin_mmap_threshold);
	}
	if ((rv = nng_msg_alloc(mp, 0)) != 0 ||
	    (secret && (rv = nng_msg_reserve(*mp, 256 * 1024)) != 0) ||
	    (rv = nng_msg_append(*mp, s, len)) != 0) {
		if (*mp != NULL) {
			nng_msg_free(*mp);
			*mp = NULL;
		}
		log_warnx("nng_msg_alloc: %s", nng_strerror(rv));
		return -1;
	}
	return 0;
}
