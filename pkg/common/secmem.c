/* secmem.c: key memory that is never swapped, never dumped, always wiped. */
#include "common.h"
#include "log.h"

#include <string.h>
#include <sys/mman.h>

void *
secmem_alloc(size_t len)
{
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	         -1, 0);
	if (p == MAP_FAILED) {
		log_warn("secmem: mmap %zu bytes", len);
		return NULL;
	}
	if (mlock(p, len) < 0) {
		log_warn("secmem: mlock %zu bytes", len);
		munmap(p, len);
		return NULL;
	}
	/* keep keys out of core dumps and out of forked children */
	(void) madvise(p, len, MADV_DONTDUMP);
	(void) madvise(p, len, MADV_DONTFORK);
	return p;
}

void
secmem_free(void *p, size_t len)
{
	if (p == NULL) {
		return;
	}
	explicit_bzero(p, len);
	munlock(p, len);
	munmap(p, len);
}
