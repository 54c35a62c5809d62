/* config_load.c - read tallyd.conf from disk for config_parse_text.
 *
 * The whole file is read into memory first: it is small, and parsing from
 * memory is what the fuzzer exercises.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int config_load(const char *path, tallyd_config_t *out, char *err, size_t errlen)
{
    if (path == NULL)
        return config_parse_text("", 0, "<defaults>", out, err, errlen);

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        config_defaults(out);
        return TALLY_ECONFIG;
    }
    size_t cap = 0, n = 0;
    char *buf = NULL;
    int rerr = 0;
    for (;;) {
        /* One byte past the limit is enough for config_parse_text to say
         * the file is too long. */
        if (n > CONFIG_FILE_MAX)
            break;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16384;
            if (ncap > CONFIG_FILE_MAX + 1)
                ncap = CONFIG_FILE_MAX + 1;
            char *p = realloc(buf, ncap);
            if (p == NULL) {
                rerr = ENOMEM;
                break;
            }
            buf = p;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rerr = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rerr != 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(rerr));
        free(buf);
        config_defaults(out);
        return TALLY_ECONFIG;
    }
    int rc = config_parse_text(buf ? buf : "", n, path, out, err, errlen);
    free(buf);
    return rc;
}
