/* escrow.h: vtpm-verify escrow, the controller side of the key broker's
 * recovery escrow (docs/updates.md). */
#ifndef VTPM_VERIFY_ESCROW_H
#define VTPM_VERIFY_ESCROW_H

#include <stdio.h>

/* escrow.c: "escrow keygen|recover ..." (argv[0] is "escrow"). Returns
 * the exit code. */
int  escrow_cmd(int argc, char **argv);
void escrow_usage(FILE *f);

#endif
