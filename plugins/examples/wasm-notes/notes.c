// `notes`: an example third-party runtime-driver plugin as a WebAssembly component, written in
// C against the WIT world `eos:driver@1.0.0` (plugins/wit/driver.wit) and built by the test
// suite with Debian's clang and wasi-libc, then made a component by wit-component with the
// published WASI preview 1 adapter.
//
// Its "workloads" are notes: a component whose repository is `note://TEXT` is kept as a file in
// the plugin's own folder (`/data`, the one place it may touch), holding its log. A note runs
// while its file exists, so it outlives EN restarts and `recover` finds it again. A repository
// of another scheme cannot be fetched; `note://trap` traps inside the plugin, to show that the
// EN contains it.
//
// The canonical ABI is written out by hand (no generated bindings): each export takes its
// strings as (pointer, length) pairs that the host allocated with `cabi_realloc`, and returns a
// pointer to a return area holding the result.

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The host interface of the world's version; the tests build a plugin for another version by
// defining it.
#ifndef EOS_DRIVER_HOST
#define EOS_DRIVER_HOST "eos:driver/host@1.0.0"
#endif

__attribute__((import_module(EOS_DRIVER_HOST), import_name("log")))
extern void host_log(const char *ptr, size_t len);

static void say(const char *text) { host_log(text, strlen(text)); }

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_len, size_t align, size_t new_len) {
    (void)old_len;
    (void)align;
    if (new_len == 0) return (void *)align;
    void *p = realloc(old, new_len);
    if (!p) abort();
    return p;
}

// ---- small text helpers ------------------------------------------------------------------

typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->ptr = realloc(b->ptr, b->cap);
        if (!b->ptr) abort();
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

// A copy of the string the host passed (it is ours to free), with a terminating zero.
static char *take(char *ptr, size_t len) {
    char *s = malloc(len + 1);
    if (!s) abort();
    memcpy(s, ptr, len);
    s[len] = 0;
    free(ptr);
    return s;
}

// The string value of `"field":"..."` in a flat JSON object; NULL when absent or escaped.
static char *field(const char *json, const char *name) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", name);
    const char *at = strstr(json, pattern);
    if (!at) return NULL;
    at += strlen(pattern);
    const char *end = strchr(at, '"');
    if (!end) return NULL;
    for (const char *c = at; c < end; c++)
        if (*c == '\\') return NULL;
    char *out = malloc(end - at + 1);
    memcpy(out, at, end - at);
    out[end - at] = 0;
    return out;
}

// ---- return areas ------------------------------------------------------------------------

// string: [ptr, len]; result<string, string> and result<_, string>: [tag u8, ptr, len].
static uint32_t ret[3];
// What the previous call returned; freed at the next (the host has copied it by then).
static char *last;

static void keep(buf *b) {
    free(last);
    last = b->ptr;
}

static uint32_t *string_out(buf *b) {
    keep(b);
    ret[0] = (uint32_t)(uintptr_t)b->ptr;
    ret[1] = (uint32_t)b->len;
    return ret;
}

static uint32_t *result_out(int is_err, buf *b) {
    keep(b);
    ret[0] = (uint32_t)is_err;
    ret[1] = (uint32_t)(uintptr_t)b->ptr;
    ret[2] = (uint32_t)b->len;
    return ret;
}

static uint32_t *ok_text(const char *s) {
    buf b = {0};
    puts_(&b, s);
    return result_out(0, &b);
}

static uint32_t *error(const char *kind, const char *reason, const char *repository) {
    buf b = {0};
    puts_(&b, "{\"kind\":\"");
    puts_(&b, kind);
    puts_(&b, "\",\"reason\":\"");
    puts_(&b, reason);
    if (repository) {
        puts_(&b, "\",\"repository\":\"");
        puts_(&b, repository);
    }
    puts_(&b, "\"}");
    return result_out(1, &b);
}

// ---- notes ------------------------------------------------------------------------------

// `/data/DEPLOYMENT~COMPONENT`, or NULL for a key that does not read.
static char *note_path(const char *key_json) {
    char *deployment = field(key_json, "deployment_id");
    char *component = field(key_json, "component");
    char *path = NULL;
    if (deployment && component && !strchr(deployment, '~') && !strchr(deployment, '/') &&
        !strchr(component, '/') && deployment[0] != '.' && component[0] != '.') {
        path = malloc(strlen(deployment) + strlen(component) + 8);
        sprintf(path, "/data/%s~%s", deployment, component);
    }
    free(deployment);
    free(component);
    return path;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void handle_of(buf *b, const char *path) {
    puts_(b, "{\"driver\":\"notes\",\"data\":{\"file\":\"");
    puts_(b, path + strlen("/data/"));
    puts_(b, "\"}}");
}

__attribute__((export_name("info")))
uint32_t *info(void) {
    buf b = {0};
    puts_(&b, "{\"runtime\":\"notes\",\"source\":\"wasm\",\"version\":\"notes 1.0.0\","
              "\"deployment_types\":[\"custom\"]}");
    return string_out(&b);
}

__attribute__((export_name("apply")))
uint32_t *apply(char *key_ptr, size_t key_len, char *spec_ptr, size_t spec_len) {
    char *key = take(key_ptr, key_len);
    char *spec = take(spec_ptr, spec_len);
    char *repository = field(spec, "repository");
    char *revision = field(spec, "revision");
    char *path = note_path(key);
    uint32_t *out;
    if (!path) {
        out = error("other", "an unreadable instance key", NULL);
    } else if (!repository || strncmp(repository, "note://", 7) != 0) {
        out = error("fetch", "a notes component's repository is note://TEXT", repository ? repository : "");
    } else if (strcmp(repository, "note://trap") == 0) {
        say("asked to trap");
        __builtin_trap();
    } else {
        // The same spec again changes nothing: the note is only written when it is new or
        // its revision differs.
        buf line = {0};
        puts_(&line, "kept ");
        puts_(&line, repository + strlen("note://"));
        puts_(&line, " at revision ");
        puts_(&line, revision ? revision : "?");
        puts_(&line, "\n");
        int same = 0;
        FILE *f = fopen(path, "r");
        if (f) {
            char first[512] = {0};
            same = fgets(first, sizeof first, f) && strcmp(first, line.ptr) == 0;
            fclose(f);
        }
        if (!same) {
            f = fopen(path, "w");
            if (!f) {
                out = error("start", "cannot write the note in /data", NULL);
                goto done;
            }
            fputs(line.ptr, f);
            fputs("running\n", f);
            fclose(f);
        }
        free(line.ptr);
        buf h = {0};
        handle_of(&h, path);
        out = result_out(0, &h);
    }
done:
    free(key);
    free(spec);
    free(repository);
    free(revision);
    free(path);
    return out;
}

__attribute__((export_name("inspect")))
uint32_t *inspect(char *key_ptr, size_t key_len) {
    char *key = take(key_ptr, key_len);
    char *path = note_path(key);
    buf b = {0};
    puts_(&b, path && exists(path) ? "\"Running\"" : "\"Unknown\"");
    free(key);
    free(path);
    return string_out(&b);
}

__attribute__((export_name("remove")))
uint32_t *remove_(char *key_ptr, size_t key_len) {
    char *key = take(key_ptr, key_len);
    char *path = note_path(key);
    if (path) unlink(path);
    free(key);
    free(path);
    buf b = {0};
    return result_out(0, &b);
}

__attribute__((export_name("recover")))
uint32_t *recover(char *key_ptr, size_t key_len, char *spec_ptr, size_t spec_len,
                  char *handle_ptr, size_t handle_len) {
    free(take(handle_ptr, handle_len));
    // A note is a file: recovering is applying, which keeps a note that is already there.
    return apply(key_ptr, key_len, spec_ptr, spec_len);
}

__attribute__((export_name("prune")))
uint32_t *prune(char *keep_ptr, size_t keep_len) {
    char *keep_list = take(keep_ptr, keep_len);
    buf removed = {0};
    puts_(&removed, "[");
    DIR *dir = opendir("/data");
    struct dirent *entry;
    int n = 0;
    while (dir && (entry = readdir(dir))) {
        char *tilde = strchr(entry->d_name, '~');
        if (!tilde) continue;
        char deployment[256], component[256];
        snprintf(deployment, sizeof deployment, "%.*s", (int)(tilde - entry->d_name), entry->d_name);
        snprintf(component, sizeof component, "%s", tilde + 1);
        buf key = {0};
        puts_(&key, "{\"deployment_id\":\"");
        puts_(&key, deployment);
        puts_(&key, "\",\"component\":\"");
        puts_(&key, component);
        puts_(&key, "\"}");
        if (!strstr(keep_list, key.ptr)) {
            char path[600];
            snprintf(path, sizeof path, "/data/%s", entry->d_name);
            unlink(path);
            if (n++) puts_(&removed, ",");
            puts_(&removed, key.ptr);
        }
        free(key.ptr);
    }
    if (dir) closedir(dir);
    puts_(&removed, "]");
    free(keep_list);
    return result_out(0, &removed);
}

__attribute__((export_name("stats")))
uint32_t *stats(char *key_ptr, size_t key_len) {
    char *key = take(key_ptr, key_len);
    char *path = note_path(key);
    struct stat st;
    char text[96];
    // A note's memory is what it holds.
    if (path && stat(path, &st) == 0)
        snprintf(text, sizeof text, "{\"cpu_percent\":null,\"memory_bytes\":%lld}", (long long)st.st_size);
    else
        snprintf(text, sizeof text, "{\"cpu_percent\":null,\"memory_bytes\":null}");
    free(key);
    free(path);
    return ok_text(text);
}

__attribute__((export_name("logs")))
uint32_t *logs(char *key_ptr, size_t key_len, uint32_t lines) {
    char *key = take(key_ptr, key_len);
    char *path = note_path(key);
    char all[64][256];
    int count = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    while (f && count < 64 && fgets(all[count], sizeof all[count], f)) {
        all[count][strcspn(all[count], "\n")] = 0;
        count++;
    }
    if (f) fclose(f);
    buf b = {0};
    puts_(&b, "[");
    int from = count > (int)lines ? count - (int)lines : 0;
    for (int i = from; i < count; i++) {
        if (i > from) puts_(&b, ",");
        puts_(&b, "\"");
        puts_(&b, all[i]);
        puts_(&b, "\"");
    }
    puts_(&b, "]");
    free(key);
    free(path);
    return result_out(0, &b);
}
