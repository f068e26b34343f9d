/*
 * key_scan.c: look for key bytes where they must never be.
 *   key_scan [--pid PID]... [PATH]...  < keys (64 hex digits a line)
 * Searches every regular file under each PATH and the memory of each PID
 * (/proc/PID/mem, readable regions) for each key as binary, lowercase hex
 * and uppercase hex. Prints each hit; exit 1 when something was found,
 * 0 when nothing, 2 on usage errors.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEYS 64
#define FILE_MAX (256u << 20)
#define CHUNK    (1u << 20)

struct pat {
	uint8_t     b[64];
	size_t      len;
	int         key;
	const char *form;
};

static struct pat pats[3 * MAX_KEYS];
static int        npats, hits;
static long       files, bytes;

static void
scan_buf(const uint8_t *p, size_t n, const char *where, long base)
{
	for (int i = 0; i < npats; i++) {
		const uint8_t *h = p;
		size_t         left = n;

		while (left >= pats[i].len &&
		       (h = memmem(h, left, pats[i].b, pats[i].len)) != NULL) {
			printf("found key %d (%s) in %s at offset %ld\n",
			       pats[i].key, pats[i].form, where,
			       base + (long) (h - p));
			hits++;
			h++;
			left = n - (size_t) (h - p);
		}
	}
}

static void
scan_file(const char *path)
{
	struct stat st;
	int         fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	void       *m;

	if (fd < 0) {
		return;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (size_t) st.st_size <= FILE_MAX) {
		m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd,
		         0);
		if (m != MAP_FAILED) {
			scan_buf(m, (size_t) st.st_size, path, 0);
			munmap(m, (size_t) st.st_size);
			files++;
			bytes += st.st_size;
		}
	}
	close(fd);
}

static void
scan_tree(const char *path)
{
	struct stat    st;
	DIR           *d;
	struct dirent *e;
	char           sub[4096];

	if (lstat(path, &st) < 0) {
		return;
	}
	if (S_ISREG(st.st_mode)) {
		scan_file(path);
		return;
	}
	if (!S_ISDIR(st.st_mode) || (d = opendir(path)) == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0) {
			continue;
		}
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) <
		    (int) sizeof(sub)) {
			scan_tree(sub);
		}
	}
	closedir(d);
}

static void
scan_pid(const char *pid)
{
	char     path[64], line[512], where[128];
	FILE    *maps;
	int      mem;
	uint8_t *buf = malloc(CHUNK + 128);

	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%s/mem", pid);
	mem = open(path, O_RDONLY);
	if (maps == NULL || mem < 0 || buf == NULL) {
		fprintf(stderr, "key_scan: cannot read memory of pid %s\n",
		        pid);
		exit(2);
	}
	snprintf(where, sizeof(where), "memory of pid %s", pid);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char          perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || strstr(line, "[vvar]") != NULL) {
			continue;
		}
		for (unsigned long a = lo; a < hi; a += CHUNK) {
			size_t want = hi - a > CHUNK ? CHUNK : hi - a;
			/* overlap so a key across a chunk edge is seen */
			size_t extra =
			    hi - a - want > 127 ? 127 : hi - a - want;
			ssize_t n = pread(mem, buf, want + extra, (off_t) a);
			if (n > 0) {
				scan_buf(buf, (size_t) n, where, (long) a);
				bytes += n;
			}
		}
	}
	fclose(maps);
	close(mem);
	free(buf);
}

static int
add_key(const char *hex, int k)
{
	uint8_t     b[32];
	struct pat *p;

	if (strlen(hex) != 64) {
		return -1;
	}
	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (!isxdigit((unsigned char) hex[2 * i]) ||
		    !isxdigit((unsigned char) hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &v) != 1) {
			return -1;
		}
		b[i] = (uint8_t) v;
	}
	p = &pats[npats++];
	memcpy(p->b, b, 32);
	p->len = 32;
	p->key = k;
	p->form = "binary";
	p = &pats[npats++];
	for (int i = 0; i < 64; i++) {
		p->b[i] = (uint8_t) tolower((unsigned char) hex[i]);
	}
	p->len = 64;
	p->key = k;
	p->form = "hex";
	p = &pats[npats++];
	for (int i = 0; i < 64; i++) {
		p->b[i] = (uint8_t) toupper((unsigned char) hex[i]);
	}
	p->len = 64;
	p->key = k;
	p->form = "HEX";
	return 0;
}

int
main(int argc, char **argv)
{
	char line[256];
	int  nkeys = 0;

	while (fgets(line, sizeof(line), stdin) != NULL && nkeys < MAX_KEYS) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0') {
			continue;
		}
		if (add_key(line, nkeys) < 0) {
			fprintf(stderr, "key_scan: bad key line %d\n", nkeys);
			return 2;
		}
		nkeys++;
	}
	if (nkeys == 0) {
		fprintf(stderr, "key_scan: no keys on stdin\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
			scan_pid(argv[++i]);
		} else {
			scan_tree(argv[i]);
		}
	}
	explicit_bzero(pats, sizeof(pats));
	printf("scanned %ld files, %ld bytes for %d keys: %d hits\n", files,
	       bytes, nkeys, hits);
	return hits ? 1 : 0;
}
