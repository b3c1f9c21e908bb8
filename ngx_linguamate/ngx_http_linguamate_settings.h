/*
 * Copyright (C) ngx_linguamate developers
 *
 * Core: the settings of the contract, resolved from directives, the
 * environment and an env file (settings.c).
 */

#ifndef _NGX_HTTP_LINGUAMATE_SETTINGS_H_INCLUDED_
#define _NGX_HTTP_LINGUAMATE_SETTINGS_H_INCLUDED_


#include "ngx_http_linguamate_module.h"


char *ngx_http_linguamate_set_setting(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_linguamate_set_env_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_linguamate_resolve_settings(ngx_conf_t *cf,
    ngx_http_linguamate_main_conf_t *lmcf);


#endif /* _NGX_HTTP_LINGUAMATE_SETTINGS_H_INCLUDED_ */
