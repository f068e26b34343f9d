/* pubsub_int.h: internals shared by the pubsub files, not by daemons. */
#ifndef VTPM_PUBSUB_INT_H
#define VTPM_PUBSUB_INT_H

#include "pubsub.h"

#include <nng/nng.h>

#define URL_LEN (SOCK_LEN + 16)
/* Envelope and snapshot framing around items: generous, fixed. */
#define ENVELOPE_MAX (MSG_MAX + 1024)

/* endpoint.c */
/* Listen on ipc url with policy->perms and the uid allow-list. policy must
 * stay valid while the socket is open; what names the socket in logs. */
int  endpoint_listen(nng_socket s, const char *url,
                     const struct peer_policy *policy);
bool peer_allowed(const struct peer_policy *p, uid_t uid);
/* Dial without waiting for the peer; NNG reconnects in the background. */
int endpoint_dial(nng_socket s, const char *url);
/* The uid of the peer that sent msg, or (uid_t)-1. */
uid_t endpoint_msg_uid(nng_msg *msg);
/* Wipe an nng message body, then free it. */
void endpoint_msg_free_wipe(nng_msg *msg);
/* Build a message holding s (strlen bytes, no NUL). When secret, the
 * buffer is reserved large enough to be mmap'd, so that NNG's own free
 * after sending returns it to the kernel instead of the heap. */
int endpoint_msg_from_string(nng_msg **mp, const char *s, bool secret);

/* topic envelope names */
#define TOPIC_OP_SET       "set"
#define TOPIC_OP_DELETE    "delete"
#define TOPIC_OP_HEARTBEAT "heartbeat"

#endif
