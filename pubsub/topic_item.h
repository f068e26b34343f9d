/* topic_item.h: a sorted set of keyed items, shared by publisher and
 * subscriber (internal to pubsub/). */
#ifndef VTPM_TOPIC_ITEM_H
#define VTPM_TOPIC_ITEM_H

#include "msg.h"

#include <stddef.h>

struct item {
	char  key[UUID_LEN];
	void *data; /* struct of the topic's schema */
	char *json; /* publisher only: encoded data object */
};

struct itemset {
	struct item *v;
	size_t       n, cap;
};

/* items.c */
struct item *items_find(struct itemset *s, const char *key);
/* Insert a new key (must be absent); returns the slot, NULL on ENOMEM. */
struct item *items_insert(struct itemset *s, const char *key);
void         items_remove(struct itemset *s, struct item *it);
void         items_clear(struct itemset *s);

#endif
