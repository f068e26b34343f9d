/* misc.c: clocks and UUID syntax. */
#include "common.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

uint64_t
now_ms(void)
{
	return now_us() / 1000u;
}

void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0) {
	}
}

bool
uuid_valid(const char *s)
{
	if (s == NULL || strlen(s) != 36) {
		return false;
	}
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-') {
				return false;
			}
		} else if (!isxdigit((unsigned char) s[i])) {
			return false;
		}
	}
	return true;
}

void
strfmt(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void) vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}
