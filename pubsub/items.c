/* items.c: keyed items kept sorted by key; binary search, array moves. */
#include "topic_item.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static size_t
lower_bound(const struct itemset *s, const char *key)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(s->v[mid].key, key) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

struct item *
items_find(struct itemset *s, const char *key)
{
	size_t i = lower_bound(s, key);

	if (i < s->n && strcmp(s->v[i].key, key) == 0) {
		return &s->v[i];
	}
	return NULL;
}

struct item *
items_insert(struct itemset *s, const char *key)
{
	size_t i = lower_bound(s, key);

	if (s->n == s->cap) {
		size_t       cap = s->cap ? s->cap * 2 : 16;
		struct item *v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL) {
			return NULL;
		}
		s->v = v;
		s->cap = cap;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->n++;
	memset(&s->v[i], 0, sizeof(s->v[i]));
	snprintf(s->v[i].key, sizeof(s->v[i].key), "%s", key);
	return &s->v[i];
}

void
items_remove(struct itemset *s, struct item *it)
{
	size_t i = (size_t) (it - s->v);

	free(it->data);
	free(it->json);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
}

void
items_clear(struct itemset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].data);
		free(s->v[i].json);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}
