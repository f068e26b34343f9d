/* msg_fuzz.c: libFuzzer target for the strict message decoder. Any input
 * must either decode into a struct that re-encodes and decodes to the same
 * struct, or be rejected with a reason; never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* sized from the schema table: any type the decoder accepts fits */
	static unsigned char *out, *again;
	static size_t         max;
	enum msg_type         t, t2;
	char                  err[256];
	char                 *enc;

	if (out == NULL) {
		max = msg_max_size();
		out = malloc(max);
		again = malloc(max);
		if (out == NULL || again == NULL) {
			abort();
		}
	}
	memset(out, 0, max);
	if (msg_decode(data, size, MSG_NONE, &t, out, err, sizeof(err)) < 0) {
		if (err[0] == '\0') {
			abort(); /* a rejection must say why */
		}
		return 0;
	}
	enc = msg_encode(t, out);
	if (enc == NULL) {
		abort();
	}
	memset(again, 0, max);
	if (msg_decode(enc, strlen(enc), t, &t2, again, err, sizeof(err)) < 0 ||
	    memcmp(out, again, msg_schema(t)->size) != 0) {
		abort(); /* what we encode we must read back identically */
	}
	msg_free_wipe(enc);
	return 0;
}
