#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "mpbatch/log.h"

static char log_role[32] = "main";
static atomic_int log_level = -1;
static pthread_mutex_t log_role_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int
level_from_env(void)
{
    const char *text = getenv("MPB_LOG_LEVEL");
    if (text == NULL || *text == '\0') {
        return MPB_LOG_WARN;
    }
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(text, "err") == 0) {
        return MPB_LOG_ERROR;
    }
    return MPB_LOG_WARN;
}

void
mpb_log_set_role(const char *role)
{
    pthread_mutex_lock(&log_role_lock);
    snprintf(log_role, sizeof log_role, "%s", role ? role : "main");
    pthread_mutex_unlock(&log_role_lock);
}

void
mpb_log_set_level(mpb_log_level level)
{
    atomic_store(&log_level, (int)level);
}

int
mpb_log_enabled(mpb_log_level level)
{
    int current = atomic_load(&log_level);
    if (current < 0) {
        current = level_from_env();
        atomic_store(&log_level, current);
    }
    return (int)level <= current;
}

void
mpb_log(mpb_log_level level, const char *tag, const char *fmt, ...)
{
    if (!mpb_log_enabled(level)) {
        return;
    }
    char line[2048];
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);

    pthread_mutex_lock(&log_role_lock);
    int used = snprintf(line, sizeof line, "%d:%s %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                        (int)getpid(), log_role, utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                        utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000,
                        level_names[level], tag ? tag : "-");
    pthread_mutex_unlock(&log_role_lock);

    va_list args;
    va_start(args, fmt);
    int body = vsnprintf(line + used, sizeof line - (size_t)used - 1, fmt, args);
    va_end(args);
    size_t len = (size_t)used + (body < 0 ? 0 : (size_t)body);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t written = write(STDERR_FILENO, line, len);
    (void)written;
}
