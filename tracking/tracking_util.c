#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "tracking/tracking_util_int.h"

/* Bytes of the code point starting with `lead` (1 for a stray byte). */
static size_t
utf8_width(unsigned char lead)
{
    if (lead >= 0xF0 && lead <= 0xF7) {
        return 4;
    }
    if (lead >= 0xE0) {
        return lead <= 0xEF ? 3 : 1;
    }
    if (lead >= 0xC0) {
        return 2;
    }
    return 1;
}

/* Byte length of the first `chars` code points (or of the whole text). */
static size_t
utf8_prefix_bytes(const char *text, size_t chars, size_t *counted)
{
    size_t pos = 0;
    size_t n = 0;
    while (text[pos] != '\0' && n < chars) {
        size_t width = utf8_width((unsigned char)text[pos]);
        size_t step = 1;
        while (step < width && ((unsigned char)text[pos + step] & 0xC0) == 0x80) {
            step++;
        }
        pos += step;
        n++;
    }
    if (counted != NULL) {
        *counted = n;
    }
    return pos;
}

char *
mpb__truncate_ellipsis(const char *text, size_t max_chars, int *truncated)
{
    MPB_ASSERT(max_chars > 3);
    size_t counted = 0;
    size_t whole = utf8_prefix_bytes(text, max_chars, &counted);
    if (text[whole] == '\0') {
        *truncated = 0;
        return mpb_strdup(text);
    }
    *truncated = 1;
    size_t keep = utf8_prefix_bytes(text, max_chars - 3, NULL);
    char *out = mpb_malloc(keep + 4);
    memcpy(out, text, keep);
    memcpy(out + keep, "...", 4);
    return out;
}

char *
mpb__tracking_user(void)
{
    const char *names[] = {"LOGNAME", "USER"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(names); i++) {
        const char *name = getenv(names[i]);
        if (name != NULL && *name != '\0') {
            return mpb_strdup(name);
        }
    }
    struct passwd entry;
    struct passwd *found = NULL;
    char buf[1024];
    if (getpwuid_r(getuid(), &entry, buf, sizeof buf, &found) == 0 && found != NULL) {
        return mpb_strdup(found->pw_name);
    }
    return mpb_strdup("unknown");
}
