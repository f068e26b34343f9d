/* durable.c: crash-safe file writes and small file-system helpers. */
#include "common.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fsync what open(path, flags) finds */
static int
fsync_open(const char *path, int flags)
{
	int fd, rc;

	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
fsync_path(const char *path)
{
	return fsync_open(path, O_RDONLY);
}

int
fsync_dir(const char *dir)
{
	return fsync_open(dir, O_RDONLY | O_DIRECTORY);
}

int
durable_write(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_LEN], dir[PATH_LEN];
	int  fd, saved;

	if (path_join(tmp, sizeof(tmp), "%s.tmp.%d", path, (int) getpid()) <
	        0 ||
	    path_join(dir, sizeof(dir), "%s", path) < 0) {
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		return -1;
	}
	if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		goto fail_tmp;
	}
	if (close(fd) < 0) {
		fd = -1;
		goto fail_tmp;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		goto fail_tmp;
	}
	return fsync_dir(dirname(dir));

fail_tmp:
	saved = errno;
	if (fd >= 0) {
		close(fd);
	}
	unlink(tmp);
	errno = saved;
	return -1;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char   buf[PATH_LEN];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = len ? ENAMETOOLONG : EINVAL;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/') {
			continue;
		}
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST) {
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, mode) < 0) {
		struct stat st;

		if (errno != EEXIST) {
			return -1;
		}
		/* something is there: only a directory will do */
		if (stat(buf, &st) < 0) {
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
	}
	return 0;
}

int
read_file(const char *path, size_t maxlen, char **out, size_t *outlen)
{
	struct stat st;
	char       *buf = NULL;
	size_t      got = 0;
	ssize_t     n;
	int         fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		goto fail;
	}
	if ((size_t) st.st_size > maxlen) {
		errno = EFBIG;
		goto fail;
	}
	buf = malloc((size_t) st.st_size + 1);
	if (buf == NULL) {
		goto fail;
	}
	/* a file that shrank under us: return what is there */
	if ((n = read_all(fd, buf, (size_t) st.st_size)) < 0) {
		goto fail;
	}
	got = (size_t) n;
	buf[got] = '\0';
	close(fd);
	*out = buf;
	if (outlen != NULL) {
		*outlen = got;
	}
	return 0;
fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) ftw;
	if (flag == FTW_DP) {
		return rmdir(path);
	}
	return unlink(path);
}

int
remove_tree(const char *path)
{
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0) {
		return errno == ENOENT ? 0 : -1;
	}
	return 0;
}
