/* watch.c: vtpmctl watch: one line per topic change, for people and tests.
 *   <topic> set <uuid> <name> <state> [reason]
 *   <topic> delete <uuid>
 *   <topic> synced <count>
 */
#include "vtpmctl.h"

#include "common.h"
#include "pubsub.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t watch_quit;

static void
on_signal(int sig)
{
	(void) sig;
	watch_quit = 1;
}

struct watch {
	const char       *topic;
	struct topic_sub *sub;
	long              lines;
};

static void
dom_set(void *arg, const char *key, const void *item)
{
	const struct domain_status *d = item;
	struct watch               *w = arg;

	printf("%s set %s %s %s%s%s\n", w->topic, key,
	       d->name[0] ? d->name : "-", dom_state_name(d->state),
	       d->reason[0] ? " " : "", d->reason);
	fflush(stdout);
	w->lines++;
}

static void
vt_set(void *arg, const char *key, const void *item)
{
	const struct vtpm_status *v = item;
	struct watch             *w = arg;

	printf("%s set %s %s %s%s%s\n", w->topic, key,
	       v->name[0] ? v->name : "-", vtpm_state_name(v->state),
	       v->reason[0] ? " " : "", v->reason);
	fflush(stdout);
	w->lines++;
}

static void
del(void *arg, const char *key)
{
	struct watch *w = arg;

	printf("%s delete %s\n", w->topic, key);
	fflush(stdout);
	w->lines++;
}

static void
synced(void *arg)
{
	struct watch *w = arg;

	printf("%s synced %zu\n", w->topic, topic_sub_count(w->sub));
	fflush(stdout);
}

int
vctl_watch(const char *rundir, bool dom, bool vtpm, long count, int timeout_ms)
{
	static const struct topic_sub_cb dcb = {dom_set, del, synced};
	static const struct topic_sub_cb vcb = {vt_set, del, synced};
	struct watch                     wd = {"DomainStatus", NULL, 0};
	struct watch                     wv = {"VtpmStatus", NULL, 0};
	struct sigaction                 sa;
	uint64_t end = timeout_ms > 0 ? now_ms() + (uint64_t) timeout_ms : 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (dom &&
	    topic_sub_open(&wd.sub, rundir, MSG_DOMAIN_STATUS, &dcb, &wd) < 0) {
		fprintf(stderr,
		        "vtpmctl: cannot subscribe to DomainStatus in "
		        "%s\n",
		        rundir);
		return 1;
	}
	if (vtpm &&
	    topic_sub_open(&wv.sub, rundir, MSG_VTPM_STATUS, &vcb, &wv) < 0) {
		fprintf(stderr,
		        "vtpmctl: cannot subscribe to VtpmStatus in "
		        "%s\n",
		        rundir);
		if (wd.sub != NULL) {
			topic_sub_close(wd.sub);
		}
		return 1;
	}
	while (!watch_quit && (count <= 0 || wd.lines + wv.lines < count) &&
	       (end == 0 || now_ms() < end)) {
		if (wd.sub != NULL) {
			topic_sub_run(wd.sub, wv.sub != NULL ? 20 : 50);
		}
		if (wv.sub != NULL) {
			topic_sub_run(wv.sub, wd.sub != NULL ? 20 : 50);
		}
	}
	if (wd.sub != NULL) {
		topic_sub_close(wd.sub);
	}
	if (wv.sub != NULL) {
		topic_sub_close(wv.sub);
	}
	return 0;
}
