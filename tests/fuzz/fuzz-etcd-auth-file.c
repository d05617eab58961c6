/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The etcd-auth-file parser (user and password for etcd): any bytes.  A
 * success must give a printable user without blanks and a password without
 * CR, LF or NUL; a failure must be one line that never quotes a password
 * line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store-etcd-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (sodium_init() < 0)
                abort();
        char *user = NULL, *password = NULL;
        sd_error err = { 0 };
        int r = sd_etcd_auth_parse((const char *) data, size, &user, &password, &err);
        if (r < 0) {
                if (err.code != -r || !err.message[0] || strchr(err.message, '\n') || user || password)
                        abort();
                return 0;
        }
        if (!user[0] || !password[0] || strlen(user) > SD_ETCD_USER_MAX || strlen(password) > SD_ETCD_PASSWORD_MAX)
                abort();
        for (const char *c = user; *c; c++)
                if ((unsigned char) *c <= 0x20 || (unsigned char) *c >= 0x7f)
                        abort();
        if (strpbrk(password, "\r\n"))
                abort();
        free(user);
        sodium_free(password);
        return 0;
}
