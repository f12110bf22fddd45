#include <string.h>

#include "mpbatch/error.h"

const char *
mpb_strerror(int status)
{
    switch (status) {
    case 0:
        return "success";
#define MPB_ERRNO_TEXT(name, value, text)                                                          \
    case (value):                                                                                  \
        return text;
        MPB_ERRNO_MAP(MPB_ERRNO_TEXT)
#undef MPB_ERRNO_TEXT
    default:
        if (status < 0 && status > -4000) {
            return strerror(-status);
        }
        return "unknown error";
    }
}

const char *
mpb_err_name(int status)
{
    switch (status) {
    case 0:
        return "MPB_OK";
#define MPB_ERRNO_NAME(name, value, text)                                                          \
    case (value):                                                                                  \
        return "MPB_" #name;
        MPB_ERRNO_MAP(MPB_ERRNO_NAME)
#undef MPB_ERRNO_NAME
    default:
        return "MPB_UNKNOWN";
    }
}

int
mpb_status_from_errno(int errnum)
{
    return errnum > 0 ? -errnum : MPB_EIO;
}
