/*
 * An HTTP client for the front-end tests: one request per connection over
 * real TCP on 127.0.0.1, the status and body back.
 */
#ifndef MPB_TESTS_FRONTENDS_HTTP_HELPERS_H
#define MPB_TESTS_FRONTENDS_HTTP_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "frontend_helpers.h"

typedef struct http_reply {
    int status;
    char *body;
} http_reply;

static inline int
connect_to(const char *address)
{
    const char *colon = strrchr(address, ':');
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

/* One request on its own connection (Connection: close) with extra header
 * lines (each ending in \r\n, or NULL); reads to EOF. */
static inline http_reply
http_with(const char *address, const char *method, const char *path, const char *headers,
          const char *body)
{
    int fd = connect_to(address);
    size_t body_len = body ? strlen(body) : 0;
    char *request = mpb_asprintf("%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                                 "%sContent-Length: %zu\r\n\r\n%s",
                                 method, path, headers ? headers : "", body_len, body ? body : "");
    size_t left = strlen(request);
    const char *at = request;
    while (left > 0) {
        ssize_t put = send(fd, at, left, MSG_NOSIGNAL);
        assert_true(put > 0);
        at += put;
        left -= (size_t)put;
    }
    free(request);
    size_t cap = 1 << 16;
    size_t len = 0;
    char *text = mpb_malloc(cap);
    ssize_t got;
    while ((got = recv(fd, text + len, cap - len - 1, 0)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) {
            cap *= 2;
            text = mpb_realloc(text, cap);
        }
    }
    text[len] = '\0';
    close(fd);
    http_reply reply = {0};
    assert_int_equal(sscanf(text, "HTTP/1.1 %d", &reply.status), 1);
    char *start = strstr(text, "\r\n\r\n");
    reply.body = mpb_strdup(start ? start + 4 : "");
    free(text);
    return reply;
}

static inline http_reply
http(const char *address, const char *method, const char *path, const char *body)
{
    return http_with(address, method, path, NULL, body);
}

static inline void
expect(const char *address, const char *method, const char *path, const char *body, int status,
       const char *needle)
{
    http_reply r = http(address, method, path, body);
    if (r.status != status || strstr(r.body, needle) == NULL) {
        fail_msg("%s %s: got %d %s, expected %d with '%s'", method, path, r.status, r.body, status,
                 needle);
    }
    free(r.body);
}

#endif
