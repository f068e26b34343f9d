/* signals.c: the daemons' one signal convention: handlers only set a flag,
 * the event loop looks at it. */
#include "common.h"

#include <signal.h>
#include <string.h>

volatile sig_atomic_t sig_quit;

static void
on_quit(int sig)
{
	(void) sig;
	sig_quit = 1;
}

void
signals_catch_quit(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_quit;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* a peer that vanished is an error return, never a dead daemon */
	signal(SIGPIPE, SIG_IGN);
}
