/* paths.c: map the --root prefix to the run, persist and state directories. */
#include "common.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int
path_join(char *dst, size_t dstlen, const char *fmt, ...)
{
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(dst, dstlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= dstlen) {
		log_warnx("path too long: %.64s...", dst);
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
paths_init(struct paths *p, const char *root)
{
	size_t len;

	memset(p, 0, sizeof(*p));
	if (root == NULL) {
		root = "";
	}
	len = strlen(root);
	if (len >= sizeof(p->root)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p->root, root, len + 1);
	/* a trailing slash would only produce "//" in every path */
	while (len > 0 && p->root[len - 1] == '/') {
		p->root[--len] = '\0';
	}
	if (path_join(p->run, sizeof(p->run), "%s/run/vtpm", p->root) < 0 ||
	    path_join(p->persist, sizeof(p->persist), "%s/persist", p->root) <
	        0 ||
	    path_join(p->state, sizeof(p->state), "%s/swtpm", p->persist) < 0 ||
	    path_join(p->vault, sizeof(p->vault), "%s/vtpm", p->persist) < 0 ||
	    path_join(p->ephemeral, sizeof(p->ephemeral), "%s/ephemeral",
	              p->run) < 0) {
		return -1;
	}
	return 0;
}

int
paths_state_dir(const struct paths *p, bool ephemeral, const char *uuid,
                char *dst, size_t len)
{
	return path_join(dst, len, "%s/tpm-state-%s",
	                 ephemeral ? p->ephemeral : p->state, uuid);
}

int
paths_mkdirs(const struct paths *p)
{
	const char *dirs[] = {p->run, p->persist, p->state, p->vault};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (mkdir_p(dirs[i], 0700) < 0) {
			log_warn("mkdir %s", dirs[i]);
			return -1;
		}
	}
	return 0;
}
