/*
 * admin.c: the operator's vtpm-verify commands (exit codes in verify.h:
 * 0 ok, 1 failed, 2 usage, 5 unknown device, EK or alert).
 *
 *   move EK --to DEVICE [--by NAME]   a planned migration: the EK's
 *                                     binding moves to DEVICE (recorded)
 *   revoke DEVICE [--by NAME]         its AK and bindings refused from now
 *   ack ALERT [--by NAME]             a clone alert reviewed
 *   devices [--state S] [--device ID] [--json]
 *   bindings [--device ID] [--ek FP] [--state S] [--json]
 *   alerts [--json]
 *   moves [--ek FP] [--json]
 *   schema                            the registry's schema version
 *
 * Listings print a table, or with --json one JSON array, written row by
 * row (a million bindings never sit in memory as one document).
 */
#include "verify.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct args {
	bool        json;
	const char *device, *ek, *state, *by, *to;
	const char *pos[2];
	int         npos;
};

/* Options allowed are named in allow (e.g. "json,device"); positional
 * arguments: exactly npos. 0 or -1 (usage printed). */
static int
parse(int argc, char **argv, const char *allow, int npos, const char *usage,
      struct args *a)
{
	static const struct {
		const char *name;
		size_t      off;
	} opts[] = {
	    {"device", offsetof(struct args, device)},
	    {"ek", offsetof(struct args, ek)},
	    {"state", offsetof(struct args, state)},
	    {"by", offsetof(struct args, by)},
	    {"to", offsetof(struct args, to)},
	};

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];
		bool        known = false;

		if (strncmp(o, "--", 2) != 0) {
			if (a->npos >= npos) {
				goto bad;
			}
			a->pos[a->npos++] = o;
			continue;
		}
		o += 2;
		if (strstr(allow, o) == NULL) {
			goto bad;
		}
		if (strcmp(o, "json") == 0) {
			a->json = true;
			continue;
		}
		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
			if (strcmp(o, opts[k].name) == 0 && i + 1 < argc) {
				*(const char **) ((char *) a + opts[k].off) =
				    argv[++i];
				known = true;
			}
		}
		if (!known) {
			goto bad;
		}
	}
	if (a->npos == npos) {
		return 0;
	}
bad:
	fprintf(stderr, "vtpm-verify: usage: %s\n", usage);
	return -1;
}

/* who did it: --by, else the user running the command */
static const char *
who(const struct args *a, char *buf, size_t len)
{
	struct passwd *pw;

	if (a->by != NULL && a->by[0] != '\0') {
		return a->by;
	}
	pw = getpwuid(geteuid());
	if (pw != NULL) {
		snprintf(buf, len, "%s", pw->pw_name);
	} else {
		snprintf(buf, len, "uid %u", (unsigned) geteuid());
	}
	return buf;
}

static const char *
isotime(int64_t t, char *buf, size_t len)
{
	time_t    tt = (time_t) t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "-");
	} else {
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	return buf;
}

/* A listing in progress: the table or the JSON array, row by row. */
struct list {
	bool json;
	long rows;
};

static void
list_row(struct list *l, cJSON *o, const char *text)
{
	if (l->json) {
		char *s = cJSON_PrintUnformatted(o);

		printf("%s%s", l->rows == 0 ? "[\n" : ",\n", s ? s : "null");
		free(s);
	} else {
		fputs(text, stdout);
	}
	cJSON_Delete(o);
	l->rows++;
}

static int
list_end(struct list *l, int ret, const char *err)
{
	if (ret < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		return VFY_EXIT_FAIL;
	}
	if (l->json) {
		printf(l->rows == 0 ? "[]\n" : "\n]\n");
	}
	return fflush(stdout) == 0 ? 0 : VFY_EXIT_FAIL;
}

static void
device_row(void *arg, const struct vfy_device *d)
{
	cJSON *o = cJSON_CreateObject();
	char   t1[32], t2[32], line[512];

	cJSON_AddStringToObject(o, "device_id", d->id);
	cJSON_AddStringToObject(o, "state", d->state);
	cJSON_AddNumberToObject(o, "updated", (double) d->updated);
	if (d->revoked_at != 0) {
		cJSON_AddNumberToObject(o, "revoked_at",
		                        (double) d->revoked_at);
		cJSON_AddStringToObject(o, "revoked_by", d->revoked_by);
	}
	snprintf(line, sizeof(line), "%-68s %-8s %-20s %s %s\n", d->id,
	         d->state, isotime(d->updated, t1, sizeof(t1)),
	         isotime(d->revoked_at, t2, sizeof(t2)),
	         d->revoked_at ? d->revoked_by : "");
	list_row(arg, o, line);
}

static int
open_reg(struct vfy_ctx *c)
{
	char err[512];

	if (vfy_ctx_registry(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		return -1;
	}
	return 0;
}

int
vfy_cmd_devices(struct vfy_ctx *c, int argc, char **argv)
{
	struct args       a;
	struct vfy_filter f;
	struct list       l = {0};
	char              err[512];

	if (parse(argc, argv, "json,state,device", 0,
	          "devices [--state pending|active|revoked] [--device ID] "
	          "[--json]",
	          &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	f = (struct vfy_filter){.device = a.device, .state = a.state};
	l.json = a.json;
	if (!l.json) {
		printf("%-68s %-8s %-20s %s\n", "DEVICE", "STATE", "UPDATED",
		       "REVOKED (BY)");
	}
	return list_end(
	    &l,
	    c->reg.ops->devices(c->reg.h, &f, device_row, &l, err, sizeof(err)),
	    err);
}

static void
binding_row(void *arg, const struct vfy_binding *b)
{
	cJSON *o = cJSON_CreateObject();
	char   t1[32], t2[32], line[512];

	cJSON_AddStringToObject(o, "ek", b->ek_fp);
	cJSON_AddStringToObject(o, "device_id", b->device);
	cJSON_AddStringToObject(o, "vm", b->vm);
	cJSON_AddStringToObject(o, "state", b->state);
	cJSON_AddNumberToObject(o, "first_seen", (double) b->first_seen);
	cJSON_AddNumberToObject(o, "last_seen", (double) b->last_seen);
	snprintf(line, sizeof(line), "%-68s %-68s %-36s %-7s %s %s\n", b->ek_fp,
	         b->device, b->vm, b->state,
	         isotime(b->first_seen, t1, sizeof(t1)),
	         isotime(b->last_seen, t2, sizeof(t2)));
	list_row(arg, o, line);
}

int
vfy_cmd_bindings(struct vfy_ctx *c, int argc, char **argv)
{
	struct args       a;
	struct vfy_filter f;
	struct list       l = {0};
	char              err[512];

	if (parse(argc, argv, "json,device,ek,state", 0,
	          "bindings [--device ID] [--ek FP] [--state active|revoked] "
	          "[--json]",
	          &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	f = (struct vfy_filter){
	    .device = a.device, .ek_fp = a.ek, .state = a.state};
	l.json = a.json;
	if (!l.json) {
		printf("%-68s %-68s %-36s %-7s %-20s %s\n", "EK", "DEVICE",
		       "VM", "STATE", "FIRST SEEN", "LAST SEEN");
	}
	return list_end(&l,
	                c->reg.ops->bindings(c->reg.h, &f, binding_row, &l, err,
	                                     sizeof(err)),
	                err);
}

static cJSON *
alert_json(const struct vfy_alert *a)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double) a->id);
	cJSON_AddStringToObject(o, "ek", a->ek_fp);
	cJSON_AddStringToObject(o, "first_device", a->first);
	cJSON_AddStringToObject(o, "second_device", a->second);
	cJSON_AddStringToObject(o, "vm", a->vm);
	cJSON_AddNumberToObject(o, "at", (double) a->at);
	if (a->acked_at != 0) {
		cJSON_AddNumberToObject(o, "acked_at", (double) a->acked_at);
		cJSON_AddStringToObject(o, "acked_by", a->acked_by);
	}
	return o;
}

static void
alert_row(void *arg, const struct vfy_alert *a)
{
	char t1[32], t2[32], line[640];

	snprintf(line, sizeof(line), "%-6lld %-68s %-36s %s %s %s %s %s\n",
	         (long long) a->id, a->ek_fp, a->vm, a->first, a->second,
	         isotime(a->at, t1, sizeof(t1)),
	         isotime(a->acked_at, t2, sizeof(t2)),
	         a->acked_at ? a->acked_by : "");
	list_row(arg, alert_json(a), line);
}

int
vfy_cmd_alerts(struct vfy_ctx *c, int argc, char **argv)
{
	struct args a;
	struct list l = {0};
	char        err[512];

	if (parse(argc, argv, "json", 0, "alerts [--json]", &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	l.json = a.json;
	if (!l.json) {
		printf("%-6s %-68s %-36s %s %s %s %s\n", "ALERT", "EK", "VM",
		       "FIRST-DEVICE", "SECOND-DEVICE", "AT", "ACKED (BY)");
	}
	return list_end(
	    &l, c->reg.ops->alerts(c->reg.h, alert_row, &l, err, sizeof(err)),
	    err);
}

static void
move_row(void *arg, const struct vfy_move *m)
{
	cJSON *o = cJSON_CreateObject();
	char   t[32], line[512];

	cJSON_AddStringToObject(o, "ek", m->ek_fp);
	cJSON_AddStringToObject(o, "from_device", m->from);
	cJSON_AddStringToObject(o, "to_device", m->to);
	cJSON_AddStringToObject(o, "vm", m->vm);
	cJSON_AddStringToObject(o, "by", m->by);
	cJSON_AddNumberToObject(o, "at", (double) m->at);
	snprintf(line, sizeof(line), "%-68s %-36s %s -> %s %s %s\n", m->ek_fp,
	         m->vm, m->from, m->to, isotime(m->at, t, sizeof(t)), m->by);
	list_row(arg, o, line);
}

int
vfy_cmd_moves(struct vfy_ctx *c, int argc, char **argv)
{
	struct args       a;
	struct vfy_filter f;
	struct list       l = {0};
	char              err[512];

	if (parse(argc, argv, "json,ek", 0, "moves [--ek FP] [--json]", &a) <
	    0) {
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	f = (struct vfy_filter){.ek_fp = a.ek};
	l.json = a.json;
	if (!l.json) {
		printf("%-68s %-36s %s %s %s\n", "EK", "VM", "FROM -> TO", "AT",
		       "BY");
	}
	return list_end(
	    &l, c->reg.ops->moves(c->reg.h, &f, move_row, &l, err, sizeof(err)),
	    err);
}

int
vfy_cmd_move(struct vfy_ctx *c, int argc, char **argv)
{
	struct args a;
	char        err[512], by[VFY_WHO_LEN];
	int         n;

	if (parse(argc, argv, "to,by", 1, "move EK --to DEVICE [--by NAME]",
	          &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	if (a.to == NULL) {
		fprintf(stderr, "vtpm-verify: usage: move EK --to DEVICE [--by "
		                "NAME]\n");
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	n = c->reg.ops->move(c->reg.h, a.pos[0], a.to, who(&a, by, sizeof(by)),
	                     err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "vtpm-verify: move of EK %s: %s\n", a.pos[0],
		        err);
		return VFY_EXIT_FAIL;
	}
	if (n == VFY_NO) {
		fprintf(
		    stderr,
		    "vtpm-verify: move: unknown EK %s (no active binding)\n",
		    a.pos[0]);
		return VFY_EXIT_UNKNOWN;
	}
	if (n == VFY_NO_DEV) {
		fprintf(
		    stderr,
		    "vtpm-verify: move of EK %s: device %s is unknown or not "
		    "active\n",
		    a.pos[0], a.to);
		return VFY_EXIT_UNKNOWN;
	}
	fprintf(stderr, "vtpm-verify: EK %s moved to device %s by %s\n",
	        a.pos[0], a.to, who(&a, by, sizeof(by)));
	return VFY_EXIT_OK;
}

int
vfy_cmd_revoke(struct vfy_ctx *c, int argc, char **argv)
{
	struct args a;
	char        err[512], by[VFY_WHO_LEN];
	int         n;

	if (parse(argc, argv, "by", 1, "revoke DEVICE [--by NAME]", &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	n = c->reg.ops->revoke(c->reg.h, a.pos[0], who(&a, by, sizeof(by)), err,
	                       sizeof(err));
	if (n < 0) {
		fprintf(stderr, "vtpm-verify: revoke device %s: %s\n", a.pos[0],
		        err);
		return VFY_EXIT_FAIL;
	}
	if (n == VFY_NO) {
		fprintf(stderr, "vtpm-verify: revoke: unknown device %s\n",
		        a.pos[0]);
		return VFY_EXIT_UNKNOWN;
	}
	fprintf(stderr, "vtpm-verify: device %s revoked by %s\n", a.pos[0],
	        who(&a, by, sizeof(by)));
	return VFY_EXIT_OK;
}

int
vfy_cmd_ack(struct vfy_ctx *c, int argc, char **argv)
{
	struct args      a;
	struct vfy_alert al;
	char             err[512], by[VFY_WHO_LEN], t[32], *end;
	long long        id;
	int              n;

	if (parse(argc, argv, "by", 1, "ack ALERT [--by NAME]", &a) < 0) {
		return VFY_EXIT_USAGE;
	}
	errno = 0;
	id = strtoll(a.pos[0], &end, 10);
	if (errno != 0 || end == a.pos[0] || *end != '\0' || id <= 0) {
		fprintf(stderr,
		        "vtpm-verify: ack: %s is not an alert number (see "
		        "vtpm-verify alerts)\n",
		        a.pos[0]);
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	n = c->reg.ops->ack(c->reg.h, (int64_t) id, who(&a, by, sizeof(by)),
	                    &al, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "vtpm-verify: ack alert %lld: %s\n", id, err);
		return VFY_EXIT_FAIL;
	}
	if (n == VFY_NO) {
		fprintf(stderr, "vtpm-verify: ack: unknown alert %lld\n", id);
		return VFY_EXIT_UNKNOWN;
	}
	fprintf(stderr, "vtpm-verify: alert %lld %s by %s at %s\n", id,
	        n == VFY_NO_DEV ? "was acknowledged already" : "acknowledged",
	        al.acked_by, isotime(al.acked_at, t, sizeof(t)));
	return VFY_EXIT_OK;
}

int
vfy_cmd_schema(struct vfy_ctx *c, int argc, char **argv)
{
	char err[512];
	int  v;

	(void) argv;
	if (argc != 0) {
		fprintf(stderr, "vtpm-verify: usage: schema\n");
		return VFY_EXIT_USAGE;
	}
	if (open_reg(c) < 0) {
		return VFY_EXIT_FAIL;
	}
	if ((v = c->reg.ops->schema_version(c->reg.h, err, sizeof(err))) < 0) {
		fprintf(stderr, "vtpm-verify: %s\n", err);
		return VFY_EXIT_FAIL;
	}
	printf("%s schema %d (this vtpm-verify: %d)\n", c->reg.ops->name, v,
	       VFY_SCHEMA);
	return VFY_EXIT_OK;
}
