/*
 * domain_pub: a stand-in domain manager for launcher tests and benches.
 * Publishes DomainStatus from command lines read on stdin (use a FIFO):
 *   UUID STATE [MODEL [MODE [ENABLED [NAME]]]]   set an item
 *       STATE: CREATING BOOTING RUNNING HALTING HALTED DELETED
 *       MODEL: tis|crb  MODE: persistent|ephemeral  ENABLED: 1|0
 *   del UUID                                     delete the item
 * With --dump FILE it also follows VtpmStatus and rewrites FILE (sorted)
 * whenever the view changes, one line per item:
 *   UUID STATE PID MODEL MODE HEALTH ENCRYPTED CTRL REASON...
 * Runs until stdin ends (then lingers --linger ms) or SIGTERM.
 */
#include "common.h"
#include "log.h"
#include "pubsub.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const states[] = {
    "CREATING", "BOOTING", "RUNNING", "HALTING", "HALTED", "DELETED", NULL};

static int
lookup(const char *const *names, const char *s)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (strcmp(names[i], s) == 0) {
			return i;
		}
	}
	return -1;
}

static int
command(struct topic_pub *pub, char *line)
{
	static const char *const models[] = {"tis", "crb", NULL};
	static const char *const modes[] = {"persistent", "ephemeral", NULL};
	struct domain_status     d;
	char                    *tok[6] = {0};
	int                      n = 0;
	char                    *save;

	for (char *t = strtok_r(line, " \t\n", &save); t != NULL && n < 6;
	     t = strtok_r(NULL, " \t\n", &save)) {
		tok[n++] = t;
	}
	if (n == 0) {
		return 0;
	}
	if (strcmp(tok[0], "del") == 0 && n == 2) {
		return topic_pub_delete(pub, tok[1]);
	}
	memset(&d, 0, sizeof(d));
	if (n < 2 || !uuid_valid(tok[0]) ||
	    (d.state = lookup(states, tok[1])) < 0) {
		fprintf(stderr, "domain_pub: bad line\n");
		return -1;
	}
	snprintf(d.uuid, sizeof(d.uuid), "%s", tok[0]);
	d.vtpm.enabled = true;
	snprintf(d.vtpm.version, sizeof(d.vtpm.version), "2.0");
	if ((n > 2 && (d.vtpm.model = lookup(models, tok[2])) < 0) ||
	    (n > 3 && (d.vtpm.mode = lookup(modes, tok[3])) < 0)) {
		fprintf(stderr, "domain_pub: bad model or mode\n");
		return -1;
	}
	if (n > 4) {
		d.vtpm.enabled = strcmp(tok[4], "0") != 0;
	}
	snprintf(d.name, sizeof(d.name), "%s", n > 5 ? tok[5] : "vm");
	return topic_pub_set(pub, d.uuid, &d);
}

struct dump {
	const char *path;
	bool        dirty;
};

static void
line(void *arg, const char *key, const void *item)
{
	const struct vtpm_status *v = item;

	fprintf(arg, "%s %s %lld %s %s %s %d %s %s\n", key,
	        vtpm_state_name(v->state), (long long) v->pid,
	        vtpm_model_name(v->model), vtpm_mode_name(v->mode),
	        state_class_name(v->health), v->encrypted ? 1 : 0,
	        v->ctrl_socket[0] ? v->ctrl_socket : "-",
	        v->reason[0] ? v->reason : "-");
}

static void
set_dirty(void *arg, const char *key, const void *item)
{
	(void) key;
	(void) item;
	((struct dump *) arg)->dirty = true;
}

static void
del_dirty(void *arg, const char *key)
{
	(void) key;
	((struct dump *) arg)->dirty = true;
}

static void
write_dump(struct topic_sub *sub, struct dump *d)
{
	char  tmp[PATH_LEN];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", d->path);
	if ((f = fopen(tmp, "w")) == NULL) {
		return;
	}
	topic_sub_foreach(sub, line, f);
	fclose(f);
	rename(tmp, d->path);
	d->dirty = false;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"dump", required_argument, NULL, 'd'},
	    {"linger", required_argument, NULL, 'l'},
	    {NULL, 0, NULL, 0}};
	const char        *run = NULL;
	struct dump        d = {NULL, false};
	struct topic_pub  *pub;
	struct topic_sub  *sub = NULL;
	struct peer_policy pol;
	int                c, linger = 0;
	bool               eof = false;
	char               buf[512];
	size_t             have = 0;
	uint64_t           eof_at = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'r') {
			run = optarg;
		} else if (c == 'd') {
			d.path = optarg;
		} else if (c == 'l') {
			linger = atoi(optarg);
		} else {
			return 2;
		}
	}
	if (run == NULL) {
		fprintf(stderr, "usage: domain_pub --run DIR [--dump FILE] "
		                "[--linger MS] < commands\n");
		return 2;
	}
	log_init(LOG_LVL_WARN, 0);
	log_procinit("domain_pub");
	signals_catch_quit();
	peer_policy_init(&pol);
	if (mkdir_p(run, 0700) < 0 ||
	    topic_pub_open(&pub, run, MSG_DOMAIN_STATUS, &pol) < 0) {
		return 1;
	}
	if (d.path != NULL) {
		static const struct topic_sub_cb cb = {set_dirty, del_dirty,
		                                       NULL};
		if (topic_sub_open(&sub, run, MSG_VTPM_STATUS, &cb, &d) < 0) {
			return 1;
		}
		topic_sub_set_retry(sub, 20);
		d.dirty = true;
	}
	while (!sig_quit) {
		struct pollfd p[2];
		int           n = 0, timeout = 200;

		if (!eof) {
			p[n++] = (struct pollfd){0, POLLIN, 0};
		} else if (now_ms() - eof_at >= (uint64_t) linger) {
			break;
		}
		if (sub != NULL) {
			timeout = topic_sub_process(sub);
			if (d.dirty && topic_sub_synced(sub)) {
				write_dump(sub, &d);
			}
			p[n++] = (struct pollfd){topic_sub_fd(sub), POLLIN, 0};
		}
		if (timeout > 200 || timeout < 0) {
			timeout = 200;
		}
		if (poll(p, (nfds_t) n, timeout) <= 0 || eof ||
		    !(p[0].revents & (POLLIN | POLLHUP))) {
			continue;
		}
		ssize_t r = read(0, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0) {
			eof = true;
			eof_at = now_ms();
			continue;
		}
		have += (size_t) r;
		buf[have] = '\0';
		char *nl;
		while ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			(void) command(pub, buf);
			size_t used = (size_t) (nl - buf) + 1;
			memmove(buf, nl + 1, have - used + 1);
			have -= used;
		}
		if (have == sizeof(buf) - 1) {
			have = 0; /* an over-long line: drop it */
		}
	}
	topic_sub_close(sub);
	topic_pub_close(pub);
	return 0;
}
