/*
 * evecompat.h: vtpm-eve-api, EVE-OS's vTPM control API in front of our
 * lifecycle. EVE's domain manager (pillar, hypervisor/kvm.go) sends
 * GET /launch, /terminate and /purge ?id=UUID over HTTP on the unix socket
 * <root>/run/swtpm/vtpmd.ctrl.sock. The adapter publishes DomainStatus for
 * those VMs (it is the domain manager as far as our launcher can tell),
 * answers when the launcher's VtpmStatus (and the guardian's
 * VtpmStateHealth for a purge) shows the outcome, and links EVE's paths
 * (<root>/run/swtpm/<uuid>.ctrl.sock and .pid) to the launcher's.
 */
#ifndef VTPM_EVECOMPAT_H
#define VTPM_EVECOMPAT_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* request.c: the HTTP request, as libmicrohttpd hands it over, into one of
 * the three operations. Pure: no I/O (fuzzed in tests/fuzz/eve_fuzz.c). */

enum eve_op { EVE_LAUNCH = 0, EVE_TERMINATE, EVE_PURGE };

struct eve_req {
	int  op;             /* enum eve_op */
	char uuid[UUID_LEN]; /* lower case, as EVE's paths spell it */
};

/* One query argument (MHD_GET_ARGUMENT_KIND), already percent-decoded;
 * value NULL for "?id" without "=". */
struct eve_arg {
	const char *key;
	const char *value;
};

#define EVE_ARGS_MAX 16 /* more query arguments than this: 400 */

/* method, path (without the query) and the query arguments into req.
 * Returns 0, or the HTTP status to answer (404 unknown path, 405 method
 * other than GET, 400 missing, repeated or invalid id) with the reason,
 * worded like EVE's, in err. */
int         eve_req_parse(const char *method, const char *path,
                          const struct eve_arg *args, size_t nargs, struct eve_req *req,
                          char *err, size_t errlen);
const char *eve_op_name(int op);

/* vms.c: the VMs the adapter published, and what the launcher and the
 * guardian say about them. Every operation waits at most answer_ms and
 * returns the HTTP status with a short plain-text reason in body. */

struct eve_cfg {
	char     rundir[4096]; /* <root>/run/vtpm: our topics */
	char     everun[4096]; /* <root>/run/swtpm: EVE's paths */
	unsigned answer_ms;    /* answer before EVE's 5 s client timeout */
	int      max_vms;      /* 0: no limit; else 429 beyond it */
	int      model;        /* enum vtpm_model of the vTPMs it asks for */
};

struct eve;

/* Publishes DomainStatus, follows VtpmStatus and VtpmStateHealth. Before
 * publishing it waits (up to adopt_ms) for the launcher's view and takes
 * over every READY vTPM as RUNNING, so a restarted adapter does not make
 * the launcher stop the vTPMs of running VMs. */
int  eve_open(struct eve **ep, const struct eve_cfg *cfg, unsigned adopt_ms,
              char *err, size_t errlen);
void eve_close(struct eve *e);
/* The subscriptions' event loop, in the caller's thread: fds to poll and
 * a step that applies what arrived; returns the poll timeout it wants. */
int eve_fds(struct eve *e, int fds[2]);
int eve_step(struct eve *e);
/* Serve one request; thread-safe, blocks up to answer_ms. Requests for
 * different VMs run in parallel, those for one VM one after another. */
int eve_handle(struct eve *e, const struct eve_req *req, char *body,
               size_t bodylen);

/* http.c: libmicrohttpd on the unix socket, one thread per connection. */
struct eve_http;
/* Binds path (mode 0600; an old socket file is replaced), admits the
 * peer uids in allow[] (and root and our own euid). */
int  eve_http_open(struct eve_http **hp, struct eve *e, const char *path,
                   const uid_t *allow, int nallow, char *err, size_t errlen);
void eve_http_close(struct eve_http *h);

#endif
