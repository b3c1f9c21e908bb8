/*
 * Copyright (C) ngx_linguamate developers
 *
 * Pure parsers: dotenv files, booleans, integers, durations, correlation
 * ids, JSON member spans, secret-looking keys and values, ISO-8601
 * times.  Every function is bounded by the length it is given, never
 * reads past it and never allocates, so the fuzz harnesses can call them
 * as is.
 */


#include <string.h>

#include "ngx_http_linguamate_parse.h"


static int ngx_http_linguamate_is_space(unsigned char c);
static int ngx_http_linguamate_key_char(unsigned char c, int first);
static int ngx_http_linguamate_lower_eq(const unsigned char *p, size_t len,
    const char *s);
static int ngx_http_linguamate_ieq(const unsigned char *a,
    const unsigned char *b, size_t len);
static int ngx_http_linguamate_b64url_char(unsigned char c);
static size_t ngx_http_linguamate_json_ws(const unsigned char *p, size_t len,
    size_t i);
static size_t ngx_http_linguamate_json_string_end(const unsigned char *p,
    size_t len, size_t i);
static size_t ngx_http_linguamate_json_value_end(const unsigned char *p,
    size_t len, size_t i);
static int ngx_http_linguamate_digits(const unsigned char *p, size_t n,
    int *out);


static int
ngx_http_linguamate_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}


static int
ngx_http_linguamate_key_char(unsigned char c, int first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_') {
        return 1;
    }

    return !first && ((c >= '0' && c <= '9') || c == '.' || c == '-');
}


static int
ngx_http_linguamate_lower_eq(const unsigned char *p, size_t len,
    const char *s)
{
    size_t         i;
    unsigned char  c;

    if (strlen(s) != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];
        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c != (unsigned char) s[i]) {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_linguamate_parse_bool(const unsigned char *p, size_t len, int *out)
{
    static const char  *yes[] = { "true", "1", "yes", "on", NULL };
    static const char  *no[] = { "false", "0", "no", "off", NULL };
    int                 i;

    for (i = 0; yes[i]; i++) {
        if (ngx_http_linguamate_lower_eq(p, len, yes[i])) {
            *out = 1;
            return 0;
        }
    }

    for (i = 0; no[i]; i++) {
        if (ngx_http_linguamate_lower_eq(p, len, no[i])) {
            *out = 0;
            return 0;
        }
    }

    return -1;
}


int
ngx_http_linguamate_parse_uint(const unsigned char *p, size_t len,
    uint64_t max, uint64_t *out)
{
    size_t    i;
    uint64_t  v, d;

    if (len == 0 || len > 20) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        d = (uint64_t) (p[i] - '0');

        if (v > (max - d) / 10) {
            return -1;
        }

        v = v * 10 + d;
    }

    *out = v;
    return 0;
}


/*
 * "3600" (seconds), "90s", "15m", "12h", "7d", "2w", "1y"; the forms the
 * original's jsonwebtoken "expiresIn" accepted and operators write.
 */

int
ngx_http_linguamate_parse_duration(const unsigned char *p, size_t len,
    int64_t *seconds)
{
    size_t    n;
    uint64_t  v, unit;

    n = len;

    if (n == 0) {
        return -1;
    }

    switch (p[n - 1]) {
    case 's': unit = 1; n--; break;
    case 'm': unit = 60; n--; break;
    case 'h': unit = 3600; n--; break;
    case 'd': unit = 86400; n--; break;
    case 'w': unit = 7 * 86400; n--; break;
    case 'y': unit = 365 * 86400; n--; break;
    default: unit = 1;
    }

    if (ngx_http_linguamate_parse_uint(p, n,
                                       NGX_HTTP_LINGUAMATE_DURATION_MAX, &v)
        != 0)
    {
        return -1;
    }

    if (v == 0 || v > NGX_HTTP_LINGUAMATE_DURATION_MAX / unit) {
        return -1;
    }

    *seconds = (int64_t) (v * unit);
    return 0;
}


/*
 * dotenv syntax as the Node "dotenv" package reads it: KEY=VALUE lines,
 * "#" comments, an optional "export " prefix, single, double and back
 * quotes (double quotes expand \n, \r, \t, \" and \\; quoted values may
 * span lines), and unquoted values trimmed and cut at " #".
 * Decoded values are written to "scratch" (at least len bytes).
 */

int
ngx_http_linguamate_dotenv_parse(const unsigned char *buf, size_t len,
    unsigned char *scratch, ngx_http_linguamate_dotenv_pt handler,
    void *data, unsigned *err_line, const char **err)
{
    int                   rc;
    unsigned              line, start_line;
    const unsigned char  *p, *end, *key, *v, *ve;
    unsigned char        *out, *val, q;
    size_t                key_len;

    p = buf;
    end = buf + len;
    out = scratch;
    line = 1;

    if (memchr(buf, '\0', len) != NULL) {
        *err_line = 0;
        *err = "NUL byte in file";
        return -1;
    }

    while (p < end) {

        while (p < end && ngx_http_linguamate_is_space(*p)) {
            p++;
        }

        if (p == end) {
            break;
        }

        if (*p == '\n') {
            p++;
            line++;
            continue;
        }

        if (*p == '#') {
            while (p < end && *p != '\n') {
                p++;
            }
            continue;
        }

        start_line = line;

        if (end - p > 7 && memcmp(p, "export", 6) == 0
            && (p[6] == ' ' || p[6] == '\t'))
        {
            p += 7;
            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }
        }

        key = p;

        while (p < end && ngx_http_linguamate_key_char(*p, p == key)) {
            p++;
        }

        key_len = (size_t) (p - key);

        if (key_len == 0) {
            *err_line = start_line;
            *err = "invalid variable name";
            return -1;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end || *p != '=') {
            *err_line = start_line;
            *err = "expected \"=\" after the variable name";
            return -1;
        }

        p++;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        val = out;

        if (p < end && (*p == '"' || *p == '\'' || *p == '`')) {
            q = *p++;

            for ( ;; ) {
                if (p == end) {
                    *err_line = start_line;
                    *err = "unterminated quoted value";
                    return -1;
                }

                if (*p == q) {
                    p++;
                    break;
                }

                if (*p == '\n') {
                    line++;
                }

                if (q == '"' && *p == '\\' && p + 1 < end) {
                    switch (p[1]) {
                    case 'n': *out++ = '\n'; p += 2; continue;
                    case 'r': *out++ = '\r'; p += 2; continue;
                    case 't': *out++ = '\t'; p += 2; continue;
                    case '"': *out++ = '"'; p += 2; continue;
                    case '\\': *out++ = '\\'; p += 2; continue;
                    default: break;
                    }
                }

                *out++ = *p++;
            }

            while (p < end && ngx_http_linguamate_is_space(*p)) {
                p++;
            }

            if (p < end && *p == '#') {
                while (p < end && *p != '\n') {
                    p++;
                }
            }

            if (p < end && *p != '\n') {
                *err_line = line;
                *err = "unexpected text after the closing quote";
                return -1;
            }

        } else {
            v = p;

            while (p < end && *p != '\n') {
                if (*p == '#' && p > v
                    && (p[-1] == ' ' || p[-1] == '\t'))
                {
                    break;
                }
                p++;
            }

            ve = p;

            while (ve > v && ngx_http_linguamate_is_space(ve[-1])) {
                ve--;
            }

            memcpy(out, v, (size_t) (ve - v));
            out += ve - v;

            while (p < end && *p != '\n') {
                p++;
            }
        }

        rc = handler(data, key, key_len, val, (size_t) (out - val),
                     start_line);
        if (rc != 0) {
            *err_line = start_line;
            *err = NULL;
            return rc;
        }
    }

    return 0;
}


int
ngx_http_linguamate_corr_id_valid(const unsigned char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > NGX_HTTP_LINGUAMATE_CORR_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '.' || c == '_' || c == ':' || c == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}



/*
 * Whether JSON text nests at most "max" arrays and objects deep; strings
 * are skipped.  Parsers that recurse (or free recursively) are only given
 * text that passed.
 */

int
ngx_http_linguamate_json_depth_ok(const unsigned char *p, size_t len,
    unsigned max)
{
    size_t    i;
    unsigned  depth, in_string;

    depth = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {

        if (in_string) {
            if (p[i] == '\\') {
                i++;

            } else if (p[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            in_string = 1;
            break;

        case '[':
        case '{':
            if (++depth > max) {
                return 0;
            }
            break;

        case ']':
        case '}':
            if (depth) {
                depth--;
            }
            break;
        }
    }

    return 1;
}



static int
ngx_http_linguamate_ieq(const unsigned char *a, const unsigned char *b,
    size_t len)
{
    size_t         i;
    unsigned char  x, y;

    for (i = 0; i < len; i++) {
        x = a[i];
        y = b[i];

        if (x >= 'A' && x <= 'Z') {
            x |= 0x20;
        }

        if (y >= 'A' && y <= 'Z') {
            y |= 0x20;
        }

        if (x != y) {
            return 0;
        }
    }

    return 1;
}


/*
 * Does an Origin ("scheme://host[:port]") match a configured pattern?
 * Patterns: an exact origin; "*"; or "[scheme://]*.domain[:port]", which
 * matches the subdomains of domain on a label boundary only: "*.example.com"
 * takes "https://app.example.com", never "https://evilexample.com" (the
 * original's "ends with" did); without a scheme it takes https only.
 * Wildcards count only when "wildcards".  Returns 1 for a match, 2 for a
 * match by "*" (answered "*", never with credentials), 0 otherwise.
 */

int
ngx_http_linguamate_origin_match(const unsigned char *pat, size_t plen,
    const unsigned char *org, size_t olen, int wildcards)
{
    size_t                ps, os, dlen, hlen, pplen, oplen;
    const unsigned char  *p, *o, *dom, *host, *pport, *oport, *end;

    if (olen == 0 || plen == 0) {
        return 0;
    }

    if (plen == 1 && pat[0] == '*') {
        return wildcards ? 2 : 0;
    }

    /* the origin's scheme, host and port */

    for (os = 0; os + 2 < olen; os++) {
        if (org[os] == ':' && org[os + 1] == '/' && org[os + 2] == '/') {
            break;
        }
    }

    if (os == 0 || os + 2 >= olen) {
        return 0;
    }

    host = org + os + 3;
    end = org + olen;

    for (o = host; o < end && *o != ':' && *o != '/'; o++) { /* void */ }

    hlen = o - host;
    oport = (o < end && *o == ':') ? o + 1 : end;
    oplen = end - oport;

    if (hlen == 0 || (o < end && *o == '/')) {
        return 0;
    }

    /* an exact pattern */

    for (ps = 0; ps < plen; ps++) {
        if (pat[ps] == '*') {
            break;
        }
    }

    if (ps == plen) {
        return plen == olen && ngx_http_linguamate_ieq(pat, org, olen);
    }

    if (!wildcards) {
        return 0;
    }

    /* "[scheme://]*.domain[:port]" */

    if (ps > 0) {
        if (ps < 3 || ps - 3 != os || pat[ps - 3] != ':'
            || pat[ps - 2] != '/' || pat[ps - 1] != '/'
            || !ngx_http_linguamate_ieq(pat, org, os))
        {
            return 0;
        }

    } else if (os != 5
               || !ngx_http_linguamate_ieq(org,
                                           (const unsigned char *) "https", 5))
    {
        /* a wildcard without a scheme means https only */
        return 0;
    }

    p = pat + ps;

    if (plen - ps < 3 || p[1] != '.') {
        return 0;
    }

    dom = p + 2;

    for (p = dom; p < pat + plen && *p != ':'; p++) { /* void */ }

    dlen = p - dom;
    pport = (p < pat + plen) ? p + 1 : pat + plen;
    pplen = pat + plen - pport;

    if (dlen == 0 || hlen <= dlen + 1
        || host[hlen - dlen - 1] != '.'
        || !ngx_http_linguamate_ieq(host + hlen - dlen, dom, dlen))
    {
        return 0;
    }

    return pplen == oplen && ngx_http_linguamate_ieq(pport, oport, oplen);
}


void
ngx_http_linguamate_uuid4(const unsigned char rnd[16],
    unsigned char out[NGX_HTTP_LINGUAMATE_UUID_LEN])
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      b[16];
    int                i, o;

    memcpy(b, rnd, 16);

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */

    o = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }

        out[o++] = (unsigned char) hex[b[i] >> 4];
        out[o++] = (unsigned char) hex[b[i] & 0x0f];
    }
}


static int
ngx_http_linguamate_b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


static size_t
ngx_http_linguamate_json_ws(const unsigned char *p, size_t len, size_t i)
{
    while (i < len
           && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
    {
        i++;
    }

    return i;
}


/* the offset just past the string that starts (with its quote) at i */

static size_t
ngx_http_linguamate_json_string_end(const unsigned char *p, size_t len,
    size_t i)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\') {
            i++;

        } else if (p[i] == '"') {
            return i + 1;
        }
    }

    return 0;
}


/*
 * The offset just past the value that starts at i, or 0.  Arrays and
 * objects are skipped by counting brackets outside strings: no recursion,
 * whatever the nesting.
 */

static size_t
ngx_http_linguamate_json_value_end(const unsigned char *p, size_t len,
    size_t i)
{
    size_t  depth, start;

    if (i >= len) {
        return 0;
    }

    if (p[i] == '"') {
        return ngx_http_linguamate_json_string_end(p, len, i);
    }

    if (p[i] == '{' || p[i] == '[') {
        depth = 0;

        while (i < len) {
            switch (p[i]) {

            case '"':
                i = ngx_http_linguamate_json_string_end(p, len, i);
                if (i == 0) {
                    return 0;
                }
                continue;

            case '{':
            case '[':
                depth++;
                break;

            case '}':
            case ']':
                if (--depth == 0) {
                    return i + 1;
                }
                break;
            }

            i++;
        }

        return 0;
    }

    /* a number or a literal */

    start = i;

    while (i < len && p[i] != ',' && p[i] != '}' && p[i] != ']'
           && p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
    {
        i++;
    }

    return i > start ? i : 0;
}


/*
 * The raw bytes of a member's value, exactly as sent: "path" names a
 * member of the top-level object, then a member of that value, and so
 * on (NULL-terminated).  Keys are compared as written, escapes not
 * decoded; the first match at each level counts.  span[] receives the
 * offsets of the value's first byte and of the byte after it.  Meant for
 * text a JSON parser accepted; on anything else it fails or finds
 * nothing, and never reads past len.
 */

int
ngx_http_linguamate_json_member_span(const unsigned char *p, size_t len,
    const char *const *path, size_t span[2])
{
    size_t  i, k, kend, vstart, vend, klen;

    if (path == NULL || path[0] == NULL) {
        return -1;
    }

    i = ngx_http_linguamate_json_ws(p, len, 0);

    for ( ;; ) {

        if (i >= len || p[i] != '{') {
            return -1;
        }

        i = ngx_http_linguamate_json_ws(p, len, i + 1);

        for ( ;; ) {

            if (i >= len || p[i] != '"') {
                return -1;
            }

            k = i + 1;
            kend = ngx_http_linguamate_json_string_end(p, len, i);
            if (kend == 0) {
                return -1;
            }

            klen = kend - 1 - k;

            i = ngx_http_linguamate_json_ws(p, len, kend);
            if (i >= len || p[i] != ':') {
                return -1;
            }

            vstart = ngx_http_linguamate_json_ws(p, len, i + 1);
            vend = ngx_http_linguamate_json_value_end(p, len, vstart);
            if (vend == 0) {
                return -1;
            }

            if (klen == strlen(path[0]) && memcmp(p + k, path[0], klen) == 0)
            {
                break;
            }

            i = ngx_http_linguamate_json_ws(p, len, vend);

            if (i >= len || p[i] != ',') {
                return -1;
            }

            i = ngx_http_linguamate_json_ws(p, len, i + 1);
        }

        if (path[1] == NULL) {
            span[0] = vstart;
            span[1] = vend;
            return 0;
        }

        path++;
        i = vstart;
    }
}


/*
 * Whether a key names a secret: it contains (case-insensitively, "_" and
 * "-" ignored) one of the words below, or is "pin".
 */

int
ngx_http_linguamate_secret_key(const unsigned char *p, size_t len)
{
    size_t              i, j, k, c;
    const char         *w;
    static const char  *words[] = {
        "password", "passwd", "secret", "token", "authorization", "apikey",
        "cookie", "jwt", "otp", "creditcard", "cardnumber", "privatekey",
        NULL
    };

    /* "pin", "PIN", "p_i_n": exactly */

    for (i = 0, j = 0; i < len; i++) {
        if (p[i] == '_' || p[i] == '-') {
            continue;
        }

        if (j == 3 || (p[i] | 0x20) != (unsigned char) "pin"[j]) {
            break;
        }

        j++;
    }

    if (i == len && j == 3) {
        return 1;
    }

    for (k = 0; words[k]; k++) {
        w = words[k];

        for (i = 0; i < len; i++) {

            /* from p[i], separators skipped after the first letter */

            for (j = 0, c = i; w[j] && c < len; c++) {
                if (j && (p[c] == '_' || p[c] == '-')) {
                    continue;
                }

                if ((p[c] | 0x20) != (unsigned char) w[j]) {
                    break;
                }

                j++;
            }

            if (w[j] == '\0') {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * Whether a string value carries a credential: a JWT (a run of three
 * base64url segments, the first starting with "eyJ") or "Bearer " and 8
 * or more token characters, anywhere in it, case-insensitively.
 */

int
ngx_http_linguamate_secret_value(const unsigned char *p, size_t len)
{
    size_t  i, j, seg, n;

    for (i = 0; i + 3 <= len; i++) {

        if (i + 7 < len
            && ngx_http_linguamate_ieq(p + i, (const unsigned char *) "bearer ",
                                       7))
        {
            /* a credential: 8 or more token68 characters */

            for (j = i + 7; j < len && j < i + 15; j++) {
                if (!ngx_http_linguamate_b64url_char(p[j]) && p[j] != '.'
                    && p[j] != '~' && p[j] != '+' && p[j] != '/')
                {
                    break;
                }
            }

            if (j == i + 15) {
                return 1;
            }
        }

        if (p[i] != 'e' || p[i + 1] != 'y' || p[i + 2] != 'J'
            || (i > 0 && ngx_http_linguamate_b64url_char(p[i - 1])))
        {
            continue;
        }

        /* "eyJ..." "." "..." "." */

        seg = 0;
        n = 0;

        for (j = i; j < len && seg < 2; j++) {
            if (p[j] == '.') {
                if (n == 0) {
                    break;
                }

                seg++;
                n = 0;
                continue;
            }

            if (!ngx_http_linguamate_b64url_char(p[j])) {
                break;
            }

            n++;
        }

        if (seg == 2) {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_linguamate_digits(const unsigned char *p, size_t n, int *out)
{
    size_t  i;
    int     v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    *out = v;
    return 0;
}


/*
 * ISO-8601 as JavaScript's Date.prototype.toISOString() writes it and
 * RFC 3339 allows: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)";
 * the zone is required.  *ms receives milliseconds since the epoch.
 */

int
ngx_http_linguamate_parse_iso8601(const unsigned char *p, size_t len,
    int64_t *ms)
{
    int      year, mon, day, hour, min, sec, frac, oh, om, mdays, sign;
    size_t   i, n;
    int64_t  y, era, yoe, doy, doe, days;

    static const int  mlen[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };

    if (len < 20 || len > 40
        || ngx_http_linguamate_digits(p, 4, &year) != 0 || p[4] != '-'
        || ngx_http_linguamate_digits(p + 5, 2, &mon) != 0 || p[7] != '-'
        || ngx_http_linguamate_digits(p + 8, 2, &day) != 0
        || (p[10] != 'T' && p[10] != 't')
        || ngx_http_linguamate_digits(p + 11, 2, &hour) != 0
        || p[13] != ':'
        || ngx_http_linguamate_digits(p + 14, 2, &min) != 0
        || p[16] != ':'
        || ngx_http_linguamate_digits(p + 17, 2, &sec) != 0)
    {
        return -1;
    }

    if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59
        || sec > 60)
    {
        return -1;
    }

    mdays = mlen[mon - 1];

    if (mon == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) {
        mdays = 29;
    }

    if (day > mdays) {
        return -1;
    }

    i = 19;
    frac = 0;

    if (p[i] == '.') {
        for (i++, n = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++, n++) {
            if (n < 3) {
                frac = frac * 10 + (p[i] - '0');
            }
        }

        if (n == 0 || n > 9) {
            return -1;
        }

        for ( /* void */ ; n < 3; n++) {
            frac *= 10;
        }
    }

    oh = 0;
    om = 0;
    sign = 0;

    if (i + 1 == len && (p[i] == 'Z' || p[i] == 'z')) {
        /* UTC */

    } else if (i + 6 == len && (p[i] == '+' || p[i] == '-')
               && ngx_http_linguamate_digits(p + i + 1, 2, &oh) == 0
               && p[i + 3] == ':'
               && ngx_http_linguamate_digits(p + i + 4, 2, &om) == 0
               && oh <= 23 && om <= 59)
    {
        sign = (p[i] == '+') ? 1 : -1;

    } else {
        return -1;
    }

    /* days from the civil date (H. Hinnant's algorithm) */

    y = year - (mon <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    *ms = ((days * 86400 + hour * 3600 + min * 60 + (sec == 60 ? 59 : sec)
            - sign * (oh * 3600 + om * 60)) * 1000) + frac;

    return 0;
}
