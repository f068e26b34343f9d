/* eve_fuzz.c: libFuzzer target for the EVE API's request parser
 * (eve_req_parse). The input is split at newlines into the method, the
 * path and query arguments ("key=value", or "key" for a value-less one),
 * as libmicrohttpd hands them over. Any input must give either an
 * operation on a canonical lower-case UUID that parses again to the same
 * request, or 400/404/405 with a reason; never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "evecompat.h"

#define LINES_MAX (EVE_ARGS_MAX + 8)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char          *buf, *line[LINES_MAX];
	struct eve_arg args[LINES_MAX];
	struct eve_req req, again;
	char           err[REASON_LEN];
	size_t         nl = 0, na = 0;
	int            code;

	if ((buf = malloc(size + 1)) == NULL) {
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; nl < LINES_MAX;) {
		line[nl++] = p;
		if ((p = strchr(p, '\n')) == NULL) {
			break;
		}
		*p++ = '\0';
	}
	for (size_t i = 2; i < nl; i++) {
		char *eq = strchr(line[i], '=');

		if (eq != NULL) {
			*eq = '\0';
		}
		args[na++] =
		    (struct eve_arg){line[i], eq != NULL ? eq + 1 : NULL};
	}
	err[0] = '\0';
	code = eve_req_parse(line[0], nl > 1 ? line[1] : NULL, args, na, &req,
	                     err, sizeof(err));
	if (code != 0) {
		if ((code != 400 && code != 404 && code != 405) ||
		    err[0] == '\0') {
			abort(); /* only the API's codes, always with a reason
			          */
		}
		free(buf);
		return 0;
	}
	if (strcmp(line[0], "GET") != 0 || req.op < EVE_LAUNCH ||
	    req.op > EVE_PURGE || strlen(req.uuid) != 36 ||
	    !uuid_valid(req.uuid)) {
		abort();
	}
	for (size_t i = 0; i < 36; i++) {
		if (req.uuid[i] >= 'A' && req.uuid[i] <= 'F') {
			abort(); /* EVE's paths use lower case */
		}
	}
	{
		struct eve_arg id = {"id", req.uuid};

		if (eve_req_parse("GET", line[1], &id, 1, &again, err,
		                  sizeof(err)) != 0 ||
		    memcmp(&req, &again, sizeof(req)) != 0) {
			abort(); /* the canonical form is a fixed point */
		}
	}
	free(buf);
	return 0;
}
