/* hex.c: bytes as lowercase hex and back, strictly: a decoder that takes
 * only hex digits, so "+f" or " f" never passes as a byte. */
#include "common.h"

#include <string.h>

void
hex_encode(const uint8_t *b, size_t n, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t            i;

	if (outlen == 0) {
		return;
	}
	/* whole bytes only, and room for the NUL */
	for (i = 0; i < n && 2 * i + 2 < outlen; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * i] = '\0';
}

static int
nibble(char c)
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
hex_decode(const char *s, size_t len, uint8_t *out, size_t max)
{
	if (s == NULL || len % 2 != 0 || len / 2 > max) {
		return -1;
	}
	for (size_t i = 0; i < len / 2; i++) {
		int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return -1;
		}
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	return (int) (len / 2);
}

int
hex_decode_str(const char *s, uint8_t *out, size_t max)
{
	return s == NULL ? -1 : hex_decode(s, strlen(s), out, max);
}

int
hex_decode_exact(const char *s, uint8_t *out, size_t n)
{
	if (s == NULL || strlen(s) != 2 * n) {
		return -1;
	}
	return hex_decode(s, 2 * n, out, n) < 0 ? -1 : 0;
}
