/*
 * hex.c: lowercase hex of bytes and back.
 */
#include "tpm_ek.h"

#include <string.h>

void
tek_hex(const uint8_t *b, size_t n, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t            i;

	for (i = 0; i < n && 2 * i + 2 < outlen; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	if (outlen > 0) {
		out[2 * i < outlen ? 2 * i : outlen - 1] = '\0';
	}
}

static int
nib(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int
tek_unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t len = strlen(hex), i;

	if (len % 2 != 0 || len / 2 > max) {
		return -1;
	}
	for (i = 0; i < len / 2; i++) {
		int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -1;
		}
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	return (int) (len / 2);
}
