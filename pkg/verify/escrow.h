/* escrow.h: vtpm-verify escrow, the controller side of the key broker's
 * recovery escrow (docs/updates.md). */
#ifndef VTPM_VERIFY_ESCROW_H
#define VTPM_VERIFY_ESCROW_H

#include <stdio.h>

/* escrow.c: the arguments after "escrow": argv[0] is keygen or recover.
 * Returns the exit code. A table entry for vtpm-verify's command table:
 *   {"escrow", <wrapper calling escrow_cmd(argc, argv)>, "keygen|recover"} */
int  escrow_cmd(int argc, char **argv);
void escrow_usage(FILE *f);

#endif
