/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Arrays of pointers kept sorted by a string key (the rollback floor by
 * secret name, the registry's records by mount id): found by binary
 * search, grown by one insertion in place.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef const char *(*sorted_key_fn)(const void *item);

/* The index of key in items[0..n), or where it would go (*found false). */
static inline size_t sorted_index(void *const *items, size_t n, const char *key, sorted_key_fn key_of, bool *found) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(key_of(items[mid]), key);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

/* Put item at index at of *items (n entries), moving the rest up.
 * -ENOMEM (nothing changed). */
static inline int sorted_insert(void ***items, size_t *n, size_t at, void *item) {
        void **bigger = reallocarray(*items, *n + 1, sizeof(**items));
        if (!bigger)
                return -ENOMEM;
        memmove(&bigger[at + 1], &bigger[at], (*n - at) * sizeof(*bigger));
        bigger[at] = item;
        *items = bigger;
        (*n)++;
        return 0;
}
