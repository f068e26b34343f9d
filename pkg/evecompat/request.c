/*
 * request.c: an HTTP request of EVE's vTPM control API into an operation.
 *
 * The same answers as EVE's pkg/vtpm/swtpm-vtpm (Go's http.ServeMux with
 * one handler per path): the path decides first (exactly /launch,
 * /terminate or /purge, else 404), then the method (GET only, else 405),
 * then the id (400 when missing or not a UUID; the nil UUID is invalid).
 * The id takes the forms Go's uuid.FromString takes: canonical
 * 8-4-4-4-12, 32 hex digits, {braces} and a urn:uuid: prefix, any case;
 * it comes out canonical and lower case (the form EVE's paths use).
 */
#include "evecompat.h"

#include "common.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const op_paths[] = {"/launch", "/terminate", "/purge"};
static const char *const op_names[] = {"launch", "terminate", "purge"};

const char *
eve_op_name(int op)
{
	return op >= 0 && op <= EVE_PURGE ? op_names[op] : "?";
}

/* s (length n) as 32 hex digits, hyphens at 8-4-4-4-12 or none */
static int
uuid_canon(const char *s, size_t n, char out[UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	bool              hyph;
	size_t            j = 0;
	int               nonzero = 0;

	if (n == 38 && s[0] == '{' && s[37] == '}') {
		s++;
		n -= 2;
	} else if (n == 45 && strncasecmp(s, "urn:uuid:", 9) == 0) {
		s += 9;
		n -= 9;
	}
	if (n != 36 && n != 32) {
		return -1;
	}
	hyph = n == 36;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char) s[i];

		if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (c != '-') {
				return -1;
			}
			out[j++] = '-';
			continue;
		}
		if (!isxdigit(c)) {
			return -1;
		}
		out[j++] = hex[isdigit(c) ? c - '0' : tolower(c) - 'a' + 10];
		nonzero |= c != '0';
		if (!hyph && (j == 8 || j == 13 || j == 18 || j == 23)) {
			out[j++] = '-';
		}
	}
	out[j] = '\0';
	return nonzero ? 0 : -1; /* the nil UUID is no VM */
}

int
eve_req_parse(const char *method, const char *path, const struct eve_arg *args,
              size_t nargs, struct eve_req *req, char *err, size_t errlen)
{
	const char *id = NULL;
	int         op = -1;
	size_t      nid = 0;

	memset(req, 0, sizeof(*req));
	for (int i = 0; i <= EVE_PURGE; i++) {
		if (path != NULL && strcmp(path, op_paths[i]) == 0) {
			op = i;
		}
	}
	if (op < 0) {
		strfmt(err, errlen, "404 page not found");
		return 404;
	}
	if (method == NULL || strcmp(method, "GET") != 0) {
		strfmt(err, errlen, "Method %.32s not allowed",
		       method != NULL ? method : "(none)");
		return 405;
	}
	if (nargs > EVE_ARGS_MAX) {
		strfmt(err, errlen,
		       "vTPM %s request failed: %zu query arguments (at most "
		       "%d)",
		       op_names[op], nargs, EVE_ARGS_MAX);
		return 400;
	}
	for (size_t i = 0; i < nargs; i++) {
		if (args[i].key != NULL && strcmp(args[i].key, "id") == 0) {
			if (nid++ == 0) {
				id = args[i].value;
			}
		}
	}
	if (nid > 1) {
		strfmt(err, errlen,
		       "vTPM %s request failed, id given %zu times",
		       op_names[op], nid);
		return 400;
	}
	if (id == NULL || uuid_canon(id, strnlen(id, 64), req->uuid) < 0) {
		/* printable and bounded: the reason goes into EVE's log */
		char   shown[48];
		size_t k = 0;

		for (size_t i = 0; id != NULL && id[i] != '\0' && k < 40; i++) {
			shown[k++] =
			    isprint((unsigned char) id[i]) ? id[i] : '?';
		}
		shown[k] = '\0';
		strfmt(err, errlen,
		       "vTPM %s request failed, id \"%s\"%s is "
		       "invalid",
		       op_names[op], shown,
		       id != NULL && strlen(id) > k ? "..." : "");
		return 400;
	}
	req->op = op;
	return 0;
}
