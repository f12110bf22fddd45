/*
 * CURVE for a server's tcp:// endpoints (core/curve.h): the server keeps
 * copies of its mpb_curve_options, loads its keys when it starts (so a bad
 * key file fails mpb_server_start with the reason), and runs the ZAP
 * handler on the dispatcher's loop from before the first socket binds
 * until the dispatcher ends.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "core/zap.h"
#include "mpbatch/error.h"
#include "servlets/server_int.h"

static char *
copy_or_null(const char *text)
{
    return text != NULL && *text != '\0' ? mpb_strdup(text) : NULL;
}

void
mpb__server_curve_copy(mpb_server *self)
{
    const mpb_curve_options *curve = &self->options.curve;
    /* an empty secret is kept as given: start refuses it */
    self->curve_secret_file = curve->secret_file != NULL ? mpb_strdup(curve->secret_file) : NULL;
    self->curve_clients_dir = copy_or_null(curve->clients_dir);
    self->curve_allow = copy_or_null(curve->allow);
    self->options.curve.secret_file = self->curve_secret_file;
    self->options.curve.clients_dir = self->curve_clients_dir;
    self->options.curve.allow = self->curve_allow;
}

int
mpb__server_curve_load(mpb_server *self, char *err, size_t err_len)
{
    if (self->curve_secret_file != NULL && *self->curve_secret_file == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "curve: secret is empty (name the coordinator's .key file)");
    }
    if (self->curve_secret_file == NULL) {
        if (self->curve_clients_dir != NULL) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "curve: clients folder given without the server's secret key");
        }
        return 0;
    }
    if (self->curve_clients_dir == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "curve: a clients folder is required (the .pub certificates of "
                              "the workers and clients allowed in)");
    }
    return mpb__curve_load_secret(self->curve_secret_file, &self->curve_keys, err, err_len);
}

static void
on_zap(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__zap_handle(arg);
}

int
mpb__server_curve_open(mpb_server *self, mpb__servlet_env *env, char *err, size_t err_len)
{
    if (self->curve_secret_file == NULL) {
        return 0;
    }
    int rc = mpb__zap_open(self->zmq_context, self->curve_clients_dir, self->curve_allow,
                           self->curve_keys.public_txt, &self->zap, err, err_len);
    if (rc != 0) {
        return rc;
    }
    mpb__loop_add_socket(self->loop, mpb__zap_socket(self->zap), on_zap, self->zap);
    env->curve = &self->curve_keys;
    env->curve_key_file = self->curve_secret_file;
    return 0;
}

void
mpb__server_curve_close(mpb_server *self)
{
    if (self->zap != NULL) {
        mpb__loop_remove_socket(self->loop, mpb__zap_socket(self->zap));
        mpb__zap_close(&self->zap);
    }
}

void
mpb__server_curve_free(mpb_server *self)
{
    free(self->curve_secret_file);
    free(self->curve_clients_dir);
    free(self->curve_allow);
    explicit_bzero(&self->curve_keys, sizeof self->curve_keys);
}
