/*
 * http.c: the HTTP side of vtpm-eve-api, on libmicrohttpd.
 *
 * One unix socket (mode 0600), a thread per connection so that a launch
 * that waits for its vTPM holds up nobody else. Each request: the peer's
 * uid (SO_PEERCRED) must be allowed (403 otherwise), then eve_req_parse()
 * decides the operation or the error status, then eve_handle() runs it.
 * Bodies are one line of plain text, like Go's http.Error in EVE's server.
 */
#include "evecompat.h"

#include "common.h"
#include "log.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define EVE_HTTP_CONNS   1024 /* connections at once */
#define EVE_HTTP_IDLE_S  30   /* an idle keep-alive connection is closed */
#define EVE_HTTP_BACKLOG 256

struct eve_http {
	struct MHD_Daemon *d;
	struct eve        *e;
	int                fd;
	uid_t              allow[10];
	int                nallow;
	char               path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
};

struct args {
	struct eve_arg a[EVE_ARGS_MAX + 1];
	size_t         n; /* may exceed EVE_ARGS_MAX: counted, not kept */
};

static enum MHD_Result
arg_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args *a = cls;

	(void) kind;
	if (a->n < EVE_ARGS_MAX + 1) {
		a->a[a->n] = (struct eve_arg){key, value};
	}
	a->n++;
	return MHD_YES;
}

static enum MHD_Result
answer(struct MHD_Connection *c, int code, const char *text)
{
	char                 body[1024];
	struct MHD_Response *r;
	enum MHD_Result      rc;
	int                  n;

	n = snprintf(body, sizeof(body), "%s%s", text, text[0] ? "\n" : "");
	if (n < 0 || (size_t) n >= sizeof(body)) {
		n = (int) sizeof(body) - 1;
	}
	r = MHD_create_response_from_buffer((size_t) n, body,
	                                    MHD_RESPMEM_MUST_COPY);
	if (r == NULL) {
		return MHD_NO;
	}
	(void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                               "text/plain; charset=utf-8");
	rc = MHD_queue_response(c, (unsigned) code, r);
	MHD_destroy_response(r);
	return rc;
}

static int
peer_uid(struct MHD_Connection *c, uid_t *uid)
{
	const union MHD_ConnectionInfo *ci;
	struct ucred                    cr;
	socklen_t                       l = sizeof(cr);

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL ||
	    getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0) {
		return -1;
	}
	*uid = cr.uid;
	return 0;
}

static bool
allowed(const struct eve_http *h, uid_t uid)
{
	if (uid == 0 || uid == geteuid()) {
		return true;
	}
	for (int i = 0; i < h->nallow; i++) {
		if (h->allow[i] == uid) {
			return true;
		}
	}
	return false;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **con_cls)
{
	struct eve_http *h = cls;
	struct args      a;
	struct eve_req   req;
	char             body[REASON_LEN + 256];
	uid_t            uid;
	int              code;

	(void) version;
	(void) upload;
	if (*con_cls != NULL) {
		*upload_size = 0; /* a body we already answered: dropped */
		return MHD_YES;
	}
	*con_cls = h; /* answered on this first call, whatever comes */
	if (peer_uid(c, &uid) < 0) {
		log_warn("EVE API: peer credentials");
		return answer(c, 403, "cannot tell the peer's uid");
	}
	if (!allowed(h, uid)) {
		log_warnx("EVE API: refused uid %u (allowed: 0, %u and "
		          "--allow-uid)",
		          (unsigned) uid, (unsigned) geteuid());
		snprintf(body, sizeof(body), "uid %u may not use the vTPM API",
		         (unsigned) uid);
		return answer(c, 403, body);
	}
	memset(&a, 0, sizeof(a));
	(void) MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, &a);
	code = eve_req_parse(method, url, a.a, a.n, &req, body, sizeof(body));
	if (code != 0) {
		log_info("EVE API: %s %s: %d %s", method, url, code, body);
		return answer(c, code, body);
	}
	code = eve_handle(h->e, &req, body, sizeof(body));
	log_debug("EVE API: %s %s: %d %s", eve_op_name(req.op), req.uuid, code,
	          body);
	return answer(c, code, body);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char m[512];

	(void) cls;
	(void) vsnprintf(m, sizeof(m), fmt, ap);
	m[strcspn(m, "\n")] = '\0';
	log_warnx("libmicrohttpd: %s", m);
}

static int
listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat        st;
	mode_t             old;
	int                fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		strfmt(err, errlen, "socket path %s: longer than %zu bytes",
		       path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			strfmt(err, errlen,
			       "%s exists and is not a socket: "
			       "not replaced",
			       path);
			return -1;
		}
		(void) unlink(path); /* a socket left by an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		strfmt(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177); /* 0600 from the start: no window for others */
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
		umask(old);
		strfmt(err, errlen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0600) < 0 || listen(fd, EVE_HTTP_BACKLOG) < 0) {
		strfmt(err, errlen, "listen %s: %s", path, strerror(errno));
		close(fd);
		(void) unlink(path);
		return -1;
	}
	return fd;
}

int
eve_http_open(struct eve_http **hp, struct eve *e, const char *path,
              const uid_t *allow, int nallow, char *err, size_t errlen)
{
	struct eve_http *h;

	*hp = NULL;
	if (nallow > (int) (sizeof(h->allow) / sizeof(h->allow[0]))) {
		strfmt(err, errlen, "at most %zu --allow-uid",
		       sizeof(h->allow) / sizeof(h->allow[0]));
		return -1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		strfmt(err, errlen, "out of memory");
		return -1;
	}
	h->e = e;
	h->nallow = nallow;
	memcpy(h->allow, allow, (size_t) nallow * sizeof(*allow));
	snprintf(h->path, sizeof(h->path), "%s", path);
	if ((h->fd = listen_unix(path, err, errlen)) < 0) {
		free(h);
		return -1;
	}
	h->d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	        MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
	    NULL, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned) EVE_HTTP_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned) EVE_HTTP_IDLE_S, MHD_OPTION_END);
	if (h->d == NULL) {
		strfmt(err, errlen, "libmicrohttpd did not start on %s", path);
		close(h->fd);
		(void) unlink(path);
		free(h);
		return -1;
	}
	*hp = h;
	return 0;
}

void
eve_http_close(struct eve_http *h)
{
	if (h == NULL) {
		return;
	}
	/* waits for the connection threads; closes the listening socket */
	MHD_stop_daemon(h->d);
	(void) unlink(h->path);
	free(h);
}
