/* msg_fuzz.c: libFuzzer target for the strict message decoder. Any input
 * must either decode into a struct that re-encodes and decodes to the same
 * struct, or be rejected with a reason; never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

_Static_assert(sizeof(struct attest_rep) <= 64 * 1024 &&
                   sizeof(struct attest_req) <= 64 * 1024,
               "fuzz buffers smaller than a message struct");

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the largest message struct (AttestReply) fits */
	static unsigned char out[64 * 1024], again[64 * 1024];
	enum msg_type        t, t2;
	char                 err[256];
	char                *enc;

	memset(out, 0, sizeof(out));
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
	memset(again, 0, sizeof(again));
	if (msg_decode(enc, strlen(enc), t, &t2, again, err, sizeof(err)) < 0 ||
	    memcmp(out, again, msg_schema(t)->size) != 0) {
		abort(); /* what we encode we must read back identically */
	}
	msg_free_wipe(enc);
	return 0;
}
