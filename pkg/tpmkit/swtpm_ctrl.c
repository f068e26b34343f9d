/* swtpm_ctrl.c: swtpm control-channel commands over a unix socket. */
#include "swtpm_ctrl.h"
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
	       (uint32_t) p[2] << 8 | p[3];
}

int
swtpm_ctrl_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sa;
	struct timeval     tv;
	int                fd, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return -1;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
swtpm_ctrl_connect_wait(const char *path, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t) timeout_ms;
	unsigned delay = 1;
	int      fd;

	for (;;) {
		if ((fd = swtpm_ctrl_connect(path, timeout_ms)) >= 0) {
			return fd;
		}
		if ((errno != ENOENT && errno != ECONNREFUSED) ||
		    now_ms() >= end) {
			return -1;
		}
		sleep_ms(delay);
		if (delay < 8) {
			delay *= 2;
		}
	}
}

/* exactly len bytes; a peer that closes early is ECONNRESET */
static int
recv_all(int fd, uint8_t *buf, size_t len)
{
	ssize_t n = read_all(fd, buf, len);

	if (n >= 0 && (size_t) n < len) {
		errno = ECONNRESET;
	}
	return n >= 0 && (size_t) n == len ? 0 : -1;
}

/* Send cmd (+ payload), read the 4-byte result. */
static int
ctrl_cmd(int fd, uint32_t cmd, const uint8_t *payload, size_t plen,
         uint32_t *result)
{
	uint8_t buf[16], res[4];

	if (plen > sizeof(buf) - 4) {
		errno = EINVAL;
		return -1;
	}
	put32(buf, cmd);
	if (plen > 0) {
		memcpy(buf + 4, payload, plen);
	}
	if (write_all(fd, buf, 4 + plen) < 0 || recv_all(fd, res, 4) < 0) {
		return -1;
	}
	*result = get32(res);
	return 0;
}

int
swtpm_ctrl_init(int fd, uint32_t flags, uint32_t *result)
{
	uint8_t p[4];

	put32(p, flags);
	return ctrl_cmd(fd, SWTPM_CMD_INIT, p, sizeof(p), result);
}

int
swtpm_ctrl_shutdown(int fd, uint32_t *result)
{
	return ctrl_cmd(fd, SWTPM_CMD_SHUTDOWN, NULL, 0, result);
}

int
swtpm_ctrl_set_datafd(int fd, int *tpmfd, uint32_t *result)
{
	int             sv[2], saved;
	uint8_t         cmd[4], res[4];
	struct iovec    iov = {cmd, sizeof(cmd)};
	struct msghdr   mh;
	struct cmsghdr *cm;
	union {
		char           buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		return -1;
	}
	put32(cmd, SWTPM_CMD_SET_DATAFD);
	memset(&mh, 0, sizeof(mh));
	memset(&u, 0, sizeof(u));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &sv[1], sizeof(int));
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t) sizeof(cmd) ||
	    recv_all(fd, res, sizeof(res)) < 0) {
		goto fail;
	}
	/* swtpm holds its own copy of sv[1] now */
	close(sv[1]);
	*result = get32(res);
	if (*result != 0) {
		close(sv[0]);
		return 0;
	}
	*tpmfd = sv[0];
	return 0;
fail:
	saved = errno;
	close(sv[0]);
	close(sv[1]);
	errno = saved;
	return -1;
}

int
swtpm_tpm_transmit(int tpmfd, const uint8_t *cmd, size_t cmdlen, uint8_t *rsp,
                   size_t rspmax, int timeout_ms)
{
	struct pollfd pfd = {tpmfd, POLLIN, 0};
	size_t        got = 0, want = 10;
	uint64_t      end = now_ms() + (uint64_t) timeout_ms;

	if (write_all(tpmfd, cmd, cmdlen) < 0) {
		return -1;
	}
	while (got < want) {
		uint64_t now = now_ms();
		int      left = now < end ? (int) (end - now) : 0;
		ssize_t  n;

		if (poll(&pfd, 1, left) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = recv(tpmfd, rsp + got, want - got, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			errno = n == 0 ? ECONNRESET : errno;
			return -1;
		}
		got += (size_t) n;
		if (got >= 6 && want == 10) {
			want = get32(rsp + 2);
			if (want < 10 || want > rspmax) {
				errno = EMSGSIZE;
				return -1;
			}
		}
	}
	return (int) got;
}

int64_t
swtpm_tpm_rc(const uint8_t *rsp, size_t len)
{
	if (len < 10) {
		return -1;
	}
	return get32(rsp + 6);
}
