/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "secretd/error.h"

static int positive(int code) {
        if (code < 0)
                code = -code;
        return code == 0 ? EIO : code;
}

int sd_error_setv(sd_error *err, int code, const char *fmt, va_list ap) {
        code = positive(code);
        if (err) {
                err->code = code;
                (void) vsnprintf(err->message, sizeof(err->message), fmt, ap);
        }
        return -code;
}

int sd_error_set(sd_error *err, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = sd_error_setv(err, code, fmt, ap);
        va_end(ap);
        return r;
}

int sd_error_set_errno(sd_error *err, int code, const char *fmt, ...) {
        va_list ap;
        code = positive(code);
        va_start(ap, fmt);
        (void) sd_error_setv(err, code, fmt, ap);
        va_end(ap);
        if (err) {
                size_t used = strlen(err->message);
                (void) snprintf(err->message + used, sizeof(err->message) - used, ": %s",
                                strerror(code));
        }
        return -code;
}

int sd_error_prefix(sd_error *err, int code, const char *fmt, ...) {
        if (!err)
                return -positive(code);
        if (err->code == 0)
                err->code = positive(code);

        char prefix[SD_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);

        /* Shift the message right and put the prefix in front; the tail of
         * an overlong message is what gets cut. */
        size_t plen = strlen(prefix), cap = sizeof(err->message) - 1;
        if (plen + 2 > cap)
                plen = cap - 2;
        size_t mlen = strnlen(err->message, cap);
        if (mlen > cap - plen - 2)
                mlen = cap - plen - 2;
        memmove(err->message + plen + 2, err->message, mlen);
        memcpy(err->message, prefix, plen);
        memcpy(err->message + plen, ": ", 2);
        err->message[plen + 2 + mlen] = '\0';
        return -err->code;
}

void sd_error_clear(sd_error *err) {
        if (err) {
                err->code = 0;
                err->message[0] = '\0';
        }
}
