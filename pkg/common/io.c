/* io.c: the one EINTR-safe loop for reading and writing whole buffers. */
#include "common.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	bool        sock = true;

	while (len > 0) {
		ssize_t n;

		/* send() so that a peer that went away is EPIPE, not SIGPIPE,
		 * in tools that keep the default SIGPIPE action; write() for
		 * everything that is not a socket */
		if (sock) {
			n = send(fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			n = write(fd, p, len);
		}
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

ssize_t
read_all(int fd, void *buf, size_t len)
{
	char  *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -1;
		}
		if (n == 0) {
			break; /* end of file: the caller sees the short count
			        */
		}
		got += (size_t) n;
	}
	return (ssize_t) got;
}
