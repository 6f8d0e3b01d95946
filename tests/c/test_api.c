/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parts of the C API that mount nothing: version, enum strings, options, errors,
 * context creation, list, plan (all six mutable modes), status, NULL handling and
 * concurrent use of one context. Runs as any user; as root it also checks that a
 * caller without CAP_SYS_ADMIN gets -EPERM.
 */
#include "common.h"

#include <linux/capability.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static void test_version(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", SYSEXT_VERSION_MAJOR, SYSEXT_VERSION_MINOR, SYSEXT_VERSION_PATCH);
    CHECK_STR(sysext_version(), want);
}

static void test_enum_strings(void) {
    static const char *const modes[] = {"no", "yes", "auto", "import", "ephemeral", "ephemeral-import"};
    static const int values[] = {
        SYSEXT_MUTABLE_MODE_DISABLED, SYSEXT_MUTABLE_MODE_ENABLED, SYSEXT_MUTABLE_MODE_AUTO,
        SYSEXT_MUTABLE_MODE_IMPORT, SYSEXT_MUTABLE_MODE_EPHEMERAL, SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT,
    };
    for (int i = 0; i < 6; i++) {
        CHECK_STR(sysext_mutable_mode_to_string(values[i]), modes[i]);
        sysext_mutable_mode m = (sysext_mutable_mode) 42;
        sysext_error *err = NULL;
        CHECK_RC(sysext_mutable_mode_from_string(modes[i], &m, &err), err, 0);
        CHECK((int) m == values[i]);
        CHECK(err == NULL);
    }
    CHECK(sysext_mutable_mode_to_string(6) == NULL);
    CHECK(sysext_mutable_mode_to_string(-1) == NULL);

    static const struct { const char *s; int mode; } extra[] = {
        {"true", SYSEXT_MUTABLE_MODE_ENABLED}, {"ON", SYSEXT_MUTABLE_MODE_ENABLED},
        {"1", SYSEXT_MUTABLE_MODE_ENABLED},    {"off", SYSEXT_MUTABLE_MODE_DISABLED},
        {"0", SYSEXT_MUTABLE_MODE_DISABLED},   {"enabled", SYSEXT_MUTABLE_MODE_ENABLED},
        {"disabled", SYSEXT_MUTABLE_MODE_DISABLED},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        sysext_mutable_mode m = (sysext_mutable_mode) 42;
        CHECK_RC(sysext_mutable_mode_from_string(extra[i].s, &m, NULL), NULL, 0);
        CHECK((int) m == extra[i].mode);
    }

    static const char *const bad[] = {"bogus", "", "AUTO", "ephemeral_import", "help"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sysext_mutable_mode m = (sysext_mutable_mode) 42;
        sysext_error *err = NULL;
        CHECK_RC(sysext_mutable_mode_from_string(bad[i], &m, &err), err, -EINVAL);
        CHECK((int) m == 42); /* out-params are written only on success */
        REQUIRE(err);
        CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
        CHECK(sysext_error_get_errno(err) == EINVAL);
        CHECK(strstr(sysext_error_get_message(err), "mutable mode") != NULL);
        CHECK(sysext_error_get_path(err) == NULL);
        sysext_error_free(err);
    }
    CHECK_RC(sysext_mutable_mode_from_string(NULL, NULL, NULL), NULL, -EINVAL);

    CHECK_STR(sysext_image_kind_to_string(SYSEXT_IMAGE_KIND_DIRECTORY), "directory");
    CHECK_STR(sysext_image_kind_to_string(SYSEXT_IMAGE_KIND_SUBVOLUME), "subvolume");
    CHECK_STR(sysext_image_kind_to_string(SYSEXT_IMAGE_KIND_RAW), "raw");
    CHECK_STR(sysext_image_kind_to_string(SYSEXT_IMAGE_KIND_BLOCK), "block");
    CHECK(sysext_image_kind_to_string(4) == NULL);
    CHECK_STR(sysext_image_class_to_string(SYSEXT_IMAGE_CLASS_SYSEXT), "sysext");
    CHECK_STR(sysext_image_class_to_string(SYSEXT_IMAGE_CLASS_CONFEXT), "confext");
    CHECK(sysext_image_class_to_string(2) == NULL);

    /* Log levels are syslog priorities. */
    CHECK(SYSEXT_LOG_LEVEL_WARNING == 4 && SYSEXT_LOG_LEVEL_INFO == 6 && SYSEXT_LOG_LEVEL_DEBUG == 7);
}

static void test_options(void) {
    sysext_error *err = NULL;
    CHECK(sysext_options_new(2) == NULL);
    CHECK(sysext_options_new(-1) == NULL);

    sysext_options *o = sysext_options_new(SYSEXT_IMAGE_CLASS_SYSEXT);
    REQUIRE(o);
    CHECK_RC(sysext_options_set_root(o, "/some/root", &err), err, 0);
    CHECK_RC(sysext_options_set_root(o, NULL, &err), err, 0);

    CHECK_RC(sysext_options_set_mutable_mode(o, 6, &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_options_set_mutable_mode(o, -1, NULL), NULL, -EINVAL);
    for (int m = SYSEXT_MUTABLE_MODE_DISABLED; m <= SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT; m++)
        CHECK_RC(sysext_options_set_mutable_mode(o, m, &err), err, 0);

    CHECK_RC(sysext_options_set_mutable_mode_string(o, "bogus", &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(sysext_error_get_errno(err) == EINVAL);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    CHECK(strstr(sysext_error_get_message(err), "bogus") != NULL);
    sysext_error_free(err);
    err = NULL;
    static const char *const ok_modes[] = {"no", "yes", "auto", "import", "ephemeral", "ephemeral-import", "false", "enabled"};
    for (size_t i = 0; i < sizeof ok_modes / sizeof ok_modes[0]; i++)
        CHECK_RC(sysext_options_set_mutable_mode_string(o, ok_modes[i], &err), err, 0);
    CHECK_RC(sysext_options_set_mutable_mode_string(o, NULL, &err), err, 0);

    CHECK_RC(sysext_options_set_force(o, true, &err), err, 0);
    CHECK_RC(sysext_options_set_force(o, false, &err), err, 0);
    CHECK_RC(sysext_options_set_noexec(o, -1, &err), err, 0);
    CHECK_RC(sysext_options_set_noexec(o, 0, &err), err, 0);
    CHECK_RC(sysext_options_set_noexec(o, 1, &err), err, 0);
    CHECK_RC(sysext_options_set_initrd(o, -1, &err), err, 0);
    CHECK_RC(sysext_options_set_initrd(o, 0, &err), err, 0);
    CHECK_RC(sysext_options_set_image_policy(o, "root=verity+signed:usr=verity", &err), err, 0);
    CHECK_RC(sysext_options_set_image_policy(o, NULL, &err), err, 0);
    CHECK_RC(sysext_options_set_image_policy(o, "root=bogus", &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(strstr(sysext_error_get_message(err), "image policy") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_options_set_no_reload(o, true, &err), err, 0);
    CHECK_RC(sysext_options_set_no_reload(o, false, &err), err, 0);
    CHECK_RC(sysext_options_set_overlay_options(o, "noatime,xino=on", &err), err, 0);
    CHECK_RC(sysext_options_set_overlay_options(o, "", &err), err, 0);
    CHECK_RC(sysext_options_set_overlay_options(o, NULL, &err), err, 0);
    CHECK_RC(sysext_options_set_overlay_options(o, "upperdir=/x", &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(strstr(sysext_error_get_message(err), "upperdir") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_options_set_always_refresh(o, true, &err), err, 0);
    CHECK_RC(sysext_options_set_always_refresh(o, false, &err), err, 0);
    CHECK_RC(sysext_options_set_allow_block_devices(o, true, &err), err, 0);
    CHECK_RC(sysext_options_set_allow_block_devices(o, false, &err), err, 0);
    CHECK_RC(sysext_options_set_lock_timeout_ms(o, -1, &err), err, 0);
    CHECK_RC(sysext_options_set_lock_timeout_ms(o, 0, &err), err, 0);
    CHECK_RC(sysext_options_set_lock_timeout_ms(o, 1500, &err), err, 0);
    struct log_record rec = {0};
    CHECK_RC(sysext_options_set_log_callback(o, record_log, &rec, &err), err, 0);
    CHECK_RC(sysext_options_set_log_callback(o, NULL, NULL, &err), err, 0);

    const char *good[] = {"/usr", "/opt", "/usr/local/"};
    CHECK_RC(sysext_options_set_hierarchies(o, good, 3, &err), err, 0);
    CHECK_RC(sysext_options_set_hierarchies(o, NULL, 0, &err), err, 0);
    const char *relative[] = {"usr"};
    CHECK_RC(sysext_options_set_hierarchies(o, relative, 1, &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(strstr(sysext_error_get_message(err), "usr") != NULL);
    sysext_error_free(err);
    err = NULL;
    const char *slash[] = {"/"};
    CHECK_RC(sysext_options_set_hierarchies(o, slash, 1, NULL), NULL, -EINVAL);
    const char *dotdot[] = {"/usr/../etc"};
    CHECK_RC(sysext_options_set_hierarchies(o, dotdot, 1, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_hierarchies(o, good, 0, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_hierarchies(o, NULL, 1, NULL), NULL, -EINVAL);
    const char *with_null[] = {"/usr", NULL};
    CHECK_RC(sysext_options_set_hierarchies(o, with_null, 2, &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(strstr(sysext_error_get_message(err), "hierarchies[1]") != NULL);
    sysext_error_free(err);
    err = NULL;

    /* NULL options: -EINVAL, with and without an error object. */
    CHECK_RC(sysext_options_set_root(NULL, "/", &err), err, -EINVAL);
    REQUIRE(err);
    CHECK(strstr(sysext_error_get_message(err), "options") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_options_set_mutable_mode(NULL, 0, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_mutable_mode_string(NULL, "no", NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_force(NULL, true, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_noexec(NULL, 1, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_initrd(NULL, 1, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_image_policy(NULL, "x", NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_no_reload(NULL, true, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_always_refresh(NULL, true, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_overlay_options(NULL, "x", NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_allow_block_devices(NULL, true, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_hierarchies(NULL, good, 1, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_lock_timeout_ms(NULL, 0, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_options_set_log_callback(NULL, record_log, NULL, NULL), NULL, -EINVAL);

    sysext_options_free(o);
    sysext_options_free(NULL);
    CHECK(rec.n == 0);
}

static void test_context_new(void) {
    const char *root = make_root("context");
    sysext_error *err = NULL;
    sysext_context *sentinel = (sysext_context *) 0x1, *c = sentinel;

    /* Bad root: -ENOENT, and the out-param is left alone. */
    sysext_options *o = sysext_options_new(SYSEXT_IMAGE_CLASS_SYSEXT);
    REQUIRE(o);
    OK(sysext_options_set_root(o, pathf("%s/does-not-exist", test_scratch), &err), err);
    CHECK_RC(sysext_context_new(o, &c, &err), err, -ENOENT);
    CHECK(c == sentinel);
    REQUIRE(err);
    CHECK(sysext_error_get_errno(err) == ENOENT);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_OS);
    CHECK(sysext_error_get_path(err) && strstr(sysext_error_get_path(err), "does-not-exist"));
    CHECK(strstr(sysext_error_get_message(err), "does-not-exist") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_new(o, &c, NULL), NULL, -ENOENT);

    /* A root that is a file. */
    OK(sysext_options_set_root(o, pathf("%s/usr/bin/base", root), &err), err);
    CHECK_RC(sysext_context_new(o, &c, NULL), NULL, -ENOTDIR);

    /* NULL arguments. */
    CHECK_RC(sysext_context_new(NULL, &c, &err), err, -EINVAL);
    sysext_error_free(err);
    err = NULL;
    OK(sysext_options_set_root(o, root, &err), err);
    CHECK_RC(sysext_context_new(o, NULL, NULL), NULL, -EINVAL);
    CHECK(c == sentinel);

    /* A good context reflects its options; they can be freed right after. */
    OK(sysext_options_set_mutable_mode(o, SYSEXT_MUTABLE_MODE_EPHEMERAL, &err), err);
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);
    CHECK(sysext_context_get_image_class(c) == SYSEXT_IMAGE_CLASS_SYSEXT);
    CHECK(sysext_context_get_mutable_mode(c) == SYSEXT_MUTABLE_MODE_EPHEMERAL);
    CHECK_STR(sysext_context_get_root(c), root);
    CHECK(sysext_context_hierarchies_count(c) == 2);
    CHECK_STR(sysext_context_get_hierarchy(c, 0), "/usr");
    CHECK_STR(sysext_context_get_hierarchy(c, 1), "/opt");
    CHECK(sysext_context_get_hierarchy(c, 2) == NULL);
    sysext_context_free(c);

    /* Confext defaults; hierarchies from options. */
    c = context_for(SYSEXT_IMAGE_CLASS_CONFEXT, root, -1);
    CHECK(sysext_context_get_image_class(c) == SYSEXT_IMAGE_CLASS_CONFEXT);
    CHECK(sysext_context_get_mutable_mode(c) == SYSEXT_MUTABLE_MODE_DISABLED);
    CHECK(sysext_context_hierarchies_count(c) == 1);
    CHECK_STR(sysext_context_get_hierarchy(c, 0), "/etc");
    sysext_context_free(c);

    o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    const char *one[] = {"/usr"};
    OK(sysext_options_set_hierarchies(o, one, 1, &err), err);
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_hierarchies_count(c) == 1);
    sysext_context_free(c);

    /* The compatibility level: 257 from options_for(); 0 restores the default (the
     * environment, else the newest); other values are refused. */
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_get_compat(c) == 257);
    sysext_context_free(c);
    OK(sysext_options_set_compat(o, 0, &err), err);
    unsetenv("LIBSYSEXT_COMPAT");
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_get_compat(c) == 262);
    sysext_context_free(c);
    setenv("LIBSYSEXT_COMPAT", "257", 1);
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_get_compat(c) == 257);
    sysext_context_free(c);
    unsetenv("LIBSYSEXT_COMPAT");
    CHECK_RC(sysext_options_set_compat(o, 258, &err), err, -EINVAL);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    sysext_error_free(err);
    err = NULL;
    CHECK(sysext_context_get_compat(NULL) == 0);
    OK(sysext_options_set_compat(o, 257, &err), err);

    /* Without a mode in the options, the environment decides (as in systemd); a bad value
     * is ignored with a warning. */
    OK(sysext_options_set_mutable_mode_string(o, NULL, &err), err);
    setenv("SYSTEMD_SYSEXT_MUTABLE_MODE", "import", 1);
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_get_mutable_mode(c) == SYSEXT_MUTABLE_MODE_IMPORT);
    sysext_context_free(c);
    setenv("SYSTEMD_SYSEXT_MUTABLE_MODE", "bogus", 1);
    struct log_record rec = {0};
    OK(sysext_options_set_log_callback(o, record_log, &rec, &err), err);
    OK(sysext_context_new(o, &c, &err), err);
    CHECK(sysext_context_get_mutable_mode(c) == SYSEXT_MUTABLE_MODE_DISABLED);
    CHECK(log_has(&rec, SYSEXT_LOG_LEVEL_WARNING, "SYSTEMD_SYSEXT_MUTABLE_MODE"));
    sysext_context_free(c);
    unsetenv("SYSTEMD_SYSEXT_MUTABLE_MODE");

    /* Hierarchies from a bad environment variable. */
    OK(sysext_options_set_hierarchies(o, NULL, 0, &err), err);
    setenv("SYSTEMD_SYSEXT_HIERARCHIES", "usr", 1);
    CHECK_RC(sysext_context_new(o, &c, &err), err, -EINVAL);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    sysext_error_free(err);
    err = NULL;
    unsetenv("SYSTEMD_SYSEXT_HIERARCHIES");
    sysext_options_free(o);
    sysext_context_free(NULL);
}

static void test_list(void) {
    const char *root = make_root("list");
    /* "bar" is for another OS, "qux" for another version; "foo" in /etc/extensions shadows
     * the one in /var/lib; an empty "m" in /etc/extensions masks the one in /var/lib. */
    add_sysext(root, "bar", "ID=fedora\nVERSION_ID=40\n");
    add_sysext(root, "qux", "ID=debian\nVERSION_ID=11\n");
    add_sysext(root, "m", "ID=_any\n");
    mkdir_p(pathf("%s/etc/extensions/m", root), 0755);
    write_file(pathf("%s/etc/extensions/foo/usr/lib/extension-release.d/extension-release.foo", root), "ID=_any\n");
    write_file(pathf("%s/etc/extensions/foo/usr/bin/foo", root), "foo from etc");

    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    sysext_extension_list *list = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_list(c, &list, &err), err);
    REQUIRE(sysext_extension_list_count(list) == 4);

    const sysext_extension *bar = sysext_extension_list_get(list, 0);
    const sysext_extension *foo = sysext_extension_list_get(list, 1);
    const sysext_extension *m = sysext_extension_list_get(list, 2);
    const sysext_extension *qux = sysext_extension_list_get(list, 3);
    CHECK(sysext_extension_list_get(list, 4) == NULL);
    CHECK_STR(sysext_extension_get_name(bar), "bar");
    CHECK_STR(sysext_extension_get_name(foo), "foo");
    CHECK_STR(sysext_extension_get_name(m), "m");
    CHECK_STR(sysext_extension_get_name(qux), "qux");
    CHECK(sysext_extension_get_kind(foo) == SYSEXT_IMAGE_KIND_DIRECTORY);
    CHECK_STR(sysext_extension_get_path(foo), pathf("%s/etc/extensions/foo", root));
    CHECK_STR(sysext_extension_get_path(bar), pathf("%s/var/lib/extensions/bar", root));
    CHECK(sysext_extension_shadows_count(foo) == 1);
    CHECK_STR(sysext_extension_get_shadow(foo, 0), pathf("%s/var/lib/extensions/foo", root));
    CHECK(sysext_extension_get_shadow(foo, 1) == NULL);
    CHECK(sysext_extension_shadows_count(bar) == 0);

    /* Times are microseconds since the epoch (birth time of a directory, if the fs has one). */
    uint64_t now = (uint64_t) time(NULL) * 1000000u;
    uint64_t t = sysext_extension_get_time_usec(foo);
    CHECK(t == 0 || (t > now - 3600u * 1000000u && t < now + 3600u * 1000000u));

    /* What a merge would do, and why it would skip an image. */
    CHECK(sysext_extension_get_state(foo) == SYSEXT_IMAGE_STATE_WOULD_MERGE);
    CHECK(sysext_extension_get_reason(foo) == NULL);
    CHECK(sysext_extension_get_state(bar) == SYSEXT_IMAGE_STATE_INCOMPATIBLE);
    const char *why = sysext_extension_get_reason(bar);
    CHECK(why && strstr(why, "fedora") && strstr(why, "debian"));
    CHECK(sysext_extension_get_state(qux) == SYSEXT_IMAGE_STATE_INCOMPATIBLE);
    why = sysext_extension_get_reason(qux);
    CHECK(why && strstr(why, "11") && strstr(why, "12"));
    CHECK(sysext_extension_get_state(m) == SYSEXT_IMAGE_STATE_MASKED);
    why = sysext_extension_get_reason(m);
    CHECK(why && strstr(why, "mask"));
    CHECK_STR(sysext_image_state_to_string(sysext_extension_get_state(m)), "masked");
    CHECK_STR(sysext_image_state_to_string(SYSEXT_IMAGE_STATE_MERGED), "merged");
    CHECK_STR(sysext_image_state_to_string(SYSEXT_IMAGE_STATE_WOULD_MERGE), "would-merge");
    CHECK_STR(sysext_image_state_to_string(SYSEXT_IMAGE_STATE_INCOMPATIBLE), "incompatible");
    CHECK_STR(sysext_image_state_to_string(SYSEXT_IMAGE_STATE_INVALID), "invalid");
    CHECK_STR(sysext_image_state_to_string(SYSEXT_IMAGE_STATE_UNKNOWN), "unknown");
    CHECK(sysext_image_state_to_string(6) == NULL);

    /* The plan agrees: foo is used; bar and qux are skipped for the same reasons (and the
     * masking empty directory m, for lack of release data). */
    sysext_plan *plan = NULL;
    OK(sysext_context_plan(c, &plan, &err), err);
    CHECK(sysext_plan_extensions_count(plan) == 1);
    CHECK_STR(sysext_plan_get_extension(plan, 0), "foo");
    CHECK(sysext_plan_skipped_count(plan) == 3);
    int seen = 0;
    for (size_t i = 0; i < sysext_plan_skipped_count(plan); i++) {
        const char *name = sysext_plan_get_skipped_name(plan, i);
        const sysext_extension *img = strcmp(name, "bar") == 0 ? bar : strcmp(name, "qux") == 0 ? qux : NULL;
        if (!img)
            continue;
        seen++;
        CHECK_STR(sysext_plan_get_skipped_reason(plan, i), sysext_extension_get_reason(img));
    }
    CHECK(seen == 2);
    sysext_plan_free(plan);

    /* Getters on NULL. */
    CHECK(sysext_extension_get_name(NULL) == NULL);
    CHECK(sysext_extension_get_path(NULL) == NULL);
    CHECK(sysext_extension_get_reason(NULL) == NULL);
    CHECK(sysext_extension_get_state(NULL) == SYSEXT_IMAGE_STATE_UNKNOWN);
    CHECK(sysext_extension_get_time_usec(NULL) == 0);
    CHECK(sysext_extension_shadows_count(NULL) == 0);
    CHECK(sysext_extension_get_shadow(NULL, 0) == NULL);
    CHECK(sysext_extension_get_kind(NULL) == SYSEXT_IMAGE_KIND_DIRECTORY);
    CHECK(sysext_extension_list_count(NULL) == 0);
    CHECK(sysext_extension_list_get(NULL, 0) == NULL);
    sysext_extension_list_free(list);
    sysext_extension_list_free(NULL);

    /* NULL out-param. */
    CHECK_RC(sysext_context_list(c, NULL, &err), err, -EINVAL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_list(NULL, &list, NULL), NULL, -EINVAL);
    sysext_context_free(c);

    /* Confext images are listed by a confext context only. */
    add_confext(root, "cfg", "ID=_any\n");
    c = context_for(SYSEXT_IMAGE_CLASS_CONFEXT, root, -1);
    OK(sysext_context_list(c, &list, &err), err);
    REQUIRE(sysext_extension_list_count(list) == 1);
    CHECK_STR(sysext_extension_get_name(sysext_extension_list_get(list, 0)), "cfg");
    sysext_extension_list_free(list);
    sysext_context_free(c);

    /* Without a host os-release the list still works; a merge would fail, and says why. */
    const char *bare = make_root("list-no-os-release");
    CHECK(unlink(pathf("%s/usr/lib/os-release", bare)) == 0);
    c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, bare, -1);
    OK(sysext_context_list(c, &list, &err), err);
    REQUIRE(sysext_extension_list_count(list) == 1);
    CHECK(sysext_extension_get_state(sysext_extension_list_get(list, 0)) == SYSEXT_IMAGE_STATE_INVALID);
    why = sysext_extension_get_reason(sysext_extension_list_get(list, 0));
    CHECK(why && strstr(why, "os-release"));
    sysext_extension_list_free(list);
    CHECK_RC(sysext_context_plan(c, &plan, &err), err, -ENOENT);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_RELEASE_FILE);
    sysext_error_free(err);
    err = NULL;
    sysext_context_free(c);
}

struct mode_case {
    int mode;
    const char *name;
    int routing;        /* 0: none, 1: directory, 2: symlink to the hierarchy */
    int upper_kind;
    int imports;
};

static void check_plan_case(const struct mode_case *k) {
    const char *root = make_root(pathf("plan-%s-%d", k->name, k->routing));
    char routing[4096];
    snprintf(routing, sizeof routing, "%s/var/lib/extensions.mutable/usr", root);
    if (k->routing == 1)
        mkdir_p(routing, 0755);
    if (k->routing == 2) {
        mkdir_p(pathf("%s/var/lib/extensions.mutable", root), 0755);
        REQUIRE(symlink("/usr", routing) == 0);
    }
    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, k->mode);
    sysext_plan *plan = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_plan(c, &plan, &err), err);
    CHECK((int) sysext_plan_get_mutable_mode(plan) == k->mode);
    CHECK(sysext_plan_extensions_count(plan) == 1);
    CHECK_STR(sysext_plan_get_extension(plan, 0), "foo");
    CHECK(sysext_plan_get_extension(plan, 1) == NULL);
    CHECK(sysext_plan_using_count(plan) == 1);
    CHECK_STR(sysext_plan_get_using(plan, 0), "foo");
    CHECK(sysext_plan_skipped_count(plan) == 0);
    /* foo has nothing for /opt: one overlay. */
    REQUIRE(sysext_plan_hierarchies_count(plan) == 1);
    const sysext_hierarchy_plan *h = sysext_plan_get_hierarchy(plan, 0);
    CHECK(sysext_plan_get_hierarchy(plan, 1) == NULL);
    CHECK_STR(sysext_hierarchy_plan_get_hierarchy(h), "/usr");
    CHECK_STR(sysext_hierarchy_plan_get_target(h), pathf("%s/usr", root));
    CHECK(!sysext_hierarchy_plan_get_create_target(h));

    size_t i = 0, n = sysext_hierarchy_plan_layers_count(h);
    CHECK(sysext_hierarchy_plan_get_layer_kind(h, i) == SYSEXT_LAYER_KIND_META);
    CHECK_STR(sysext_hierarchy_plan_get_layer(h, i), "(meta)");
    CHECK(sysext_hierarchy_plan_get_layer_path(h, i) == NULL);
    i++;
    if (k->imports) {
        CHECK(sysext_hierarchy_plan_get_layer_kind(h, i) == SYSEXT_LAYER_KIND_IMPORT);
        CHECK_STR(sysext_hierarchy_plan_get_layer_path(h, i), routing);
        CHECK_STR(sysext_hierarchy_plan_get_layer(h, i), pathf("%s (import)", routing));
        i++;
    }
    CHECK(sysext_hierarchy_plan_get_layer_kind(h, i) == SYSEXT_LAYER_KIND_EXTENSION);
    CHECK_STR(sysext_hierarchy_plan_get_layer_extension(h, i), "foo");
    CHECK_STR(sysext_hierarchy_plan_get_layer_path(h, i), pathf("%s/var/lib/extensions/foo/usr", root));
    CHECK_STR(sysext_hierarchy_plan_get_layer(h, i), pathf("%s/var/lib/extensions/foo/usr (foo)", root));
    i++;
    if (k->upper_kind != SYSEXT_UPPER_KIND_HOST) {
        CHECK(sysext_hierarchy_plan_get_layer_kind(h, i) == SYSEXT_LAYER_KIND_HOST);
        CHECK_STR(sysext_hierarchy_plan_get_layer(h, i), pathf("%s/usr (host)", root));
        CHECK(sysext_hierarchy_plan_get_layer_extension(h, i) == NULL);
        i++;
    }
    CHECK(n == i);
    CHECK(sysext_hierarchy_plan_get_layer(h, n) == NULL);

    CHECK((int) sysext_hierarchy_plan_get_upper_kind(h) == k->upper_kind);
    const char *workdir = sysext_hierarchy_plan_get_work_dir(h);
    switch (k->upper_kind) {
    case SYSEXT_UPPER_KIND_NONE:
        CHECK(sysext_hierarchy_plan_is_read_only(h));
        CHECK(sysext_hierarchy_plan_get_upper_path(h) == NULL);
        CHECK(workdir == NULL);
        break;
    case SYSEXT_UPPER_KIND_MUTABLE_DIR:
    case SYSEXT_UPPER_KIND_MUTABLE_DIR_CREATED:
        CHECK(!sysext_hierarchy_plan_is_read_only(h));
        CHECK_STR(sysext_hierarchy_plan_get_upper_path(h), routing);
        CHECK_STR(workdir, pathf("%s/var/lib/extensions.mutable/.systemd-usr-workdir", root));
        break;
    case SYSEXT_UPPER_KIND_HOST:
        CHECK(!sysext_hierarchy_plan_is_read_only(h));
        CHECK_STR(sysext_hierarchy_plan_get_upper_path(h), pathf("%s/usr", root));
        CHECK_STR(workdir, pathf("%s/.systemd-usr-workdir", root));
        break;
    case SYSEXT_UPPER_KIND_EPHEMERAL:
        CHECK(!sysext_hierarchy_plan_is_read_only(h));
        CHECK(sysext_hierarchy_plan_get_upper_path(h) == NULL);
        CHECK_STR(workdir, "ephemeral");
        break;
    default:
        CHECK(!"unexpected upper kind");
    }
    CHECK(!sysext_hierarchy_plan_is_nosuid(h));
    CHECK(!sysext_hierarchy_plan_is_noexec(h));
    sysext_plan_free(plan);
    sysext_context_free(c);
    /* Planning created nothing. */
    CHECK(k->routing != 0 || !exists(routing));
}

static void test_plan_modes(void) {
    static const struct mode_case cases[] = {
        {SYSEXT_MUTABLE_MODE_DISABLED, "no", 1, SYSEXT_UPPER_KIND_NONE, 0},
        {SYSEXT_MUTABLE_MODE_ENABLED, "yes", 0, SYSEXT_UPPER_KIND_MUTABLE_DIR_CREATED, 0},
        {SYSEXT_MUTABLE_MODE_ENABLED, "yes", 1, SYSEXT_UPPER_KIND_MUTABLE_DIR, 0},
        {SYSEXT_MUTABLE_MODE_ENABLED, "yes", 2, SYSEXT_UPPER_KIND_HOST, 0},
        {SYSEXT_MUTABLE_MODE_AUTO, "auto", 0, SYSEXT_UPPER_KIND_NONE, 0},
        {SYSEXT_MUTABLE_MODE_AUTO, "auto", 1, SYSEXT_UPPER_KIND_MUTABLE_DIR, 0},
        {SYSEXT_MUTABLE_MODE_AUTO, "auto", 2, SYSEXT_UPPER_KIND_HOST, 0},
        {SYSEXT_MUTABLE_MODE_IMPORT, "import", 0, SYSEXT_UPPER_KIND_NONE, 0},
        {SYSEXT_MUTABLE_MODE_IMPORT, "import", 1, SYSEXT_UPPER_KIND_NONE, 1},
        {SYSEXT_MUTABLE_MODE_EPHEMERAL, "ephemeral", 1, SYSEXT_UPPER_KIND_EPHEMERAL, 0},
        {SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT, "ephemeral-import", 0, SYSEXT_UPPER_KIND_EPHEMERAL, 0},
        {SYSEXT_MUTABLE_MODE_EPHEMERAL_IMPORT, "ephemeral-import", 1, SYSEXT_UPPER_KIND_EPHEMERAL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_plan_case(&cases[i]);
}

static void test_plan_details(void) {
    sysext_error *err = NULL;
    sysext_plan *plan = NULL;

    /* Skipped images, noexec, and an extension for a hierarchy that does not exist yet. */
    const char *root = make_root("plan-details");
    add_sysext(root, "bar", "ID=fedora\n");
    write_file(pathf("%s/var/lib/extensions/foo/srv/data", root), "data");
    sysext_options *o = options_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, SYSEXT_MUTABLE_MODE_DISABLED);
    const char *hier[] = {"/usr", "/srv"};
    OK(sysext_options_set_hierarchies(o, hier, 2, &err), err);
    OK(sysext_options_set_noexec(o, 1, &err), err);
    sysext_context *c = NULL;
    OK(sysext_context_new(o, &c, &err), err);
    sysext_options_free(o);
    OK(sysext_context_plan(c, &plan, &err), err);
    CHECK(sysext_plan_skipped_count(plan) == 1);
    CHECK_STR(sysext_plan_get_skipped_name(plan, 0), "bar");
    CHECK(strstr(sysext_plan_get_skipped_reason(plan, 0), "fedora") != NULL);
    CHECK(sysext_plan_get_skipped_name(plan, 1) == NULL);
    CHECK(sysext_plan_get_skipped_reason(plan, 1) == NULL);
    REQUIRE(sysext_plan_hierarchies_count(plan) == 2);
    const sysext_hierarchy_plan *usr = sysext_plan_get_hierarchy(plan, 0);
    const sysext_hierarchy_plan *srv = sysext_plan_get_hierarchy(plan, 1);
    CHECK(sysext_hierarchy_plan_is_noexec(usr));
    CHECK_STR(sysext_hierarchy_plan_get_hierarchy(srv), "/srv");
    CHECK(sysext_hierarchy_plan_get_create_target(srv));
    /* No host layer for a hierarchy that does not exist. */
    CHECK(sysext_hierarchy_plan_layers_count(srv) == 2);
    sysext_plan_free(plan);
    sysext_context_free(c);

    /* Confext: /etc, nosuid and noexec by default. */
    add_confext(root, "cfg", "ID=_any\n");
    c = context_for(SYSEXT_IMAGE_CLASS_CONFEXT, root, -1);
    OK(sysext_context_plan(c, &plan, &err), err);
    REQUIRE(sysext_plan_hierarchies_count(plan) == 1);
    const sysext_hierarchy_plan *etc = sysext_plan_get_hierarchy(plan, 0);
    CHECK_STR(sysext_hierarchy_plan_get_hierarchy(etc), "/etc");
    CHECK(sysext_hierarchy_plan_is_nosuid(etc));
    CHECK(sysext_hierarchy_plan_is_noexec(etc));
    CHECK(sysext_hierarchy_plan_is_read_only(etc));
    sysext_plan_free(plan);
    sysext_context_free(c);

    /* A routing dir whose mode differs from the hierarchy's is an error of plan and merge. */
    const char *bad = make_root("plan-bad-mode");
    char routing[4096];
    snprintf(routing, sizeof routing, "%s/var/lib/extensions.mutable/usr", bad);
    mkdir_p(routing, 0700);
    REQUIRE(chmod(routing, 0700) == 0);
    c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, bad, SYSEXT_MUTABLE_MODE_AUTO);
    sysext_plan *sentinel = (sysext_plan *) 0x1;
    plan = sentinel;
    CHECK_RC(sysext_context_plan(c, &plan, &err), err, -EINVAL);
    CHECK(plan == sentinel);
    REQUIRE(err);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_MUTABLE_DIR);
    CHECK_STR(sysext_error_get_path(err), routing);
    CHECK(strstr(sysext_error_get_message(err), "0700") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_plan(c, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_plan(NULL, &plan, NULL), NULL, -EINVAL);
    sysext_context_free(c);

    /* Getters on NULL. */
    CHECK(sysext_plan_get_mutable_mode(NULL) == SYSEXT_MUTABLE_MODE_DISABLED);
    CHECK(sysext_plan_extensions_count(NULL) == 0 && sysext_plan_get_extension(NULL, 0) == NULL);
    CHECK(sysext_plan_using_count(NULL) == 0 && sysext_plan_get_using(NULL, 0) == NULL);
    CHECK(sysext_plan_skipped_count(NULL) == 0 && sysext_plan_get_skipped_name(NULL, 0) == NULL);
    CHECK(sysext_plan_get_skipped_reason(NULL, 0) == NULL);
    CHECK(sysext_plan_hierarchies_count(NULL) == 0 && sysext_plan_get_hierarchy(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_plan_get_hierarchy(NULL) == NULL && sysext_hierarchy_plan_get_target(NULL) == NULL);
    CHECK(!sysext_hierarchy_plan_get_create_target(NULL) && sysext_hierarchy_plan_layers_count(NULL) == 0);
    CHECK(sysext_hierarchy_plan_get_layer(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_plan_get_layer_kind(NULL, 0) == SYSEXT_LAYER_KIND_META);
    CHECK(sysext_hierarchy_plan_get_layer_path(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_plan_get_layer_extension(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_plan_get_upper_kind(NULL) == SYSEXT_UPPER_KIND_NONE);
    CHECK(sysext_hierarchy_plan_get_upper_path(NULL) == NULL);
    CHECK(sysext_hierarchy_plan_get_work_dir(NULL) == NULL);
    CHECK(!sysext_hierarchy_plan_is_read_only(NULL) && !sysext_hierarchy_plan_is_noexec(NULL));
    CHECK(!sysext_hierarchy_plan_is_nosuid(NULL));
    sysext_plan_free(NULL);
}

static void test_status_unmerged(void) {
    const char *root = make_root("status");
    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    sysext_status *st = NULL;
    sysext_error *err = NULL;
    OK(sysext_context_status(c, &st, &err), err);
    REQUIRE(sysext_status_count(st) == 2);
    const sysext_hierarchy_status *opt = sysext_status_get(st, 0), *usr = sysext_status_get(st, 1);
    CHECK(sysext_status_get(st, 2) == NULL);
    CHECK_STR(sysext_hierarchy_status_get_hierarchy(opt), "/opt");
    CHECK_STR(sysext_hierarchy_status_get_hierarchy(usr), "/usr");
    CHECK(!sysext_hierarchy_status_is_merged(usr));
    CHECK(sysext_hierarchy_status_extensions_count(usr) == 0);
    CHECK(sysext_hierarchy_status_get_extension(usr, 0) == NULL);
    CHECK(sysext_hierarchy_status_get_since_usec(usr) == 0);
    sysext_mutable_mode mode = SYSEXT_MUTABLE_MODE_AUTO;
    sysext_upper_kind kind = SYSEXT_UPPER_KIND_HOST;
    CHECK(!sysext_hierarchy_status_get_mutable_mode(usr, &mode) && mode == SYSEXT_MUTABLE_MODE_AUTO);
    CHECK(!sysext_hierarchy_status_get_upper_kind(usr, &kind) && kind == SYSEXT_UPPER_KIND_HOST);
    CHECK(sysext_hierarchy_status_get_upper_path(usr) == NULL);
    sysext_status_free(st);
    CHECK_RC(sysext_context_status(c, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_status(NULL, &st, NULL), NULL, -EINVAL);
    sysext_context_free(c);

    CHECK(sysext_status_count(NULL) == 0 && sysext_status_get(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_status_get_hierarchy(NULL) == NULL && !sysext_hierarchy_status_is_merged(NULL));
    CHECK(sysext_hierarchy_status_extensions_count(NULL) == 0);
    CHECK(sysext_hierarchy_status_get_extension(NULL, 0) == NULL);
    CHECK(sysext_hierarchy_status_get_since_usec(NULL) == 0);
    CHECK(!sysext_hierarchy_status_get_mutable_mode(NULL, &mode) && !sysext_hierarchy_status_get_upper_kind(NULL, &kind));
    CHECK(!sysext_hierarchy_status_get_mutable_mode(opt, NULL) && !sysext_hierarchy_status_get_upper_kind(opt, NULL));
    CHECK(sysext_hierarchy_status_get_upper_path(NULL) == NULL);
    CHECK(sysext_upper_kind_to_string(SYSEXT_UPPER_KIND_MUTABLE_DIR_CREATED) != NULL);
    CHECK_STR(sysext_upper_kind_to_string(SYSEXT_UPPER_KIND_EPHEMERAL), "ephemeral");
    CHECK(sysext_upper_kind_to_string(5) == NULL && sysext_upper_kind_to_string(-1) == NULL);
    sysext_status_free(NULL);
}

static void test_verbs_reject_bad_arguments(void) {
    const char *root = make_root("verbs-args");
    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
    sysext_error *err = NULL;
    sysext_report *report = (sysext_report *) 0x1;
    CHECK_RC(sysext_context_merge(NULL, &report, &err), err, -EINVAL);
    CHECK(report == (sysext_report *) 0x1);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_refresh(NULL, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_unmerge(NULL, NULL, NULL), NULL, -EINVAL);
    const char *names[] = {"foo", NULL};
    CHECK_RC(sysext_context_merge_names(NULL, names, 1, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_merge_names(c, NULL, 0, NULL, &err), err, -EINVAL);
    CHECK(strstr(sysext_error_get_message(err), "no names") != NULL);
    sysext_error_free(err);
    err = NULL;
    CHECK_RC(sysext_context_merge_names(c, NULL, 1, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_merge_names(c, names, 2, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_unmerge_names(c, NULL, 0, NULL, NULL), NULL, -EINVAL);
    CHECK_RC(sysext_context_unmerge_names(NULL, names, 1, NULL, NULL), NULL, -EINVAL);
    sysext_context_free(c);

    /* Report getters on NULL. */
    CHECK(sysext_report_merged_count(NULL) == 0 && sysext_report_get_merged(NULL, 0) == NULL);
    CHECK(sysext_report_hierarchies_count(NULL) == 0 && sysext_report_get_hierarchy(NULL, 0) == NULL);
    CHECK(sysext_report_unmerged_count(NULL) == 0 && sysext_report_get_unmerged(NULL, 0) == NULL);
    CHECK(sysext_report_skipped_count(NULL) == 0 && sysext_report_get_skipped_name(NULL, 0) == NULL);
    CHECK(sysext_report_get_skipped_reason(NULL, 0) == NULL && !sysext_report_needs_reload(NULL));
    sysext_report_free(NULL);
    CHECK(sysext_error_get_message(NULL) == NULL && sysext_error_get_errno(NULL) == 0);
    CHECK(sysext_error_get_kind(NULL) == SYSEXT_ERROR_KIND_UNKNOWN && sysext_error_get_path(NULL) == NULL);
    CHECK(sysext_error_get_hierarchy(NULL) == NULL && sysext_error_get_extension(NULL) == NULL);
    CHECK(sysext_report_get_target(NULL, 0) == NULL);
    sysext_error_free(NULL);
    CHECK(sysext_context_get_root(NULL) == NULL && sysext_context_hierarchies_count(NULL) == 0);
    CHECK(sysext_context_get_hierarchy(NULL, 0) == NULL);
    CHECK(sysext_context_get_image_class(NULL) == SYSEXT_IMAGE_CLASS_SYSEXT);
    CHECK(sysext_context_get_mutable_mode(NULL) == SYSEXT_MUTABLE_MODE_DISABLED);
}

/* `*ret_error` must be NULL on entry (as GLib's GError): a call given an error that is
 * still set does nothing and returns -EINVAL, and the error is neither overwritten nor
 * freed (valgrind would report the leak or a double free). */
static void test_error_must_be_null_on_entry(void) {
    const char *root = make_root("error-contract");
    sysext_error *err = NULL;
    sysext_options *o = sysext_options_new(SYSEXT_IMAGE_CLASS_SYSEXT);
    REQUIRE(o);
    CHECK_RC(sysext_options_set_mutable_mode_string(o, "bogus", &err), err, -EINVAL);
    REQUIRE(err);
    sysext_error *first = err;

    /* A call that would succeed is refused, and has no effect. */
    OK(sysext_options_set_root(o, root, NULL), NULL);
    sysext_context *sentinel = (sysext_context *) 0x1, *c = sentinel;
    CHECK(sysext_context_new(o, &c, &err) == -EINVAL);
    CHECK(c == sentinel);
    CHECK(err == first);
    CHECK(sysext_options_set_root(o, "/", &err) == -EINVAL);
    CHECK(sysext_options_set_mutable_mode_string(o, "yes", &err) == -EINVAL);
    /* A call that would fail too: the first error stays, unchanged. */
    CHECK(sysext_options_set_mutable_mode_string(o, "also-bogus", &err) == -EINVAL);
    CHECK(err == first);
    CHECK(strstr(sysext_error_get_message(err), "bogus") != NULL);
    CHECK(strstr(sysext_error_get_message(err), "also-bogus") == NULL);
    CHECK(sysext_error_get_kind(err) == SYSEXT_ERROR_KIND_INVALID_ARGUMENT);
    sysext_error_free(err);
    err = NULL;

    /* The refused calls changed nothing: root and mode are as before them. */
    OK(sysext_context_new(o, &c, &err), err);
    CHECK_STR(sysext_context_get_root(c), root);
    CHECK(sysext_context_get_mutable_mode(c) == SYSEXT_MUTABLE_MODE_DISABLED);
    sysext_context_free(c);
    sysext_options_free(o);
}

/* The _freep() helpers of the header with __attribute__((cleanup)): every handle below is
 * freed only by them when its scope ends (valgrind's leak check fails the run otherwise). */
static int cleanup_scope(const char *root) {
    __attribute__((cleanup(sysext_options_freep))) sysext_options *o = NULL;
    __attribute__((cleanup(sysext_context_freep))) sysext_context *c = NULL;
    __attribute__((cleanup(sysext_error_freep))) sysext_error *err = NULL;
    __attribute__((cleanup(sysext_extension_list_freep))) sysext_extension_list *list = NULL;
    __attribute__((cleanup(sysext_plan_freep))) sysext_plan *plan = NULL;
    __attribute__((cleanup(sysext_status_freep))) sysext_status *status = NULL;
    __attribute__((cleanup(sysext_report_freep))) sysext_report *report = NULL; /* stays NULL */

    o = sysext_options_new(SYSEXT_IMAGE_CLASS_SYSEXT);
    if (!o || sysext_options_set_root(o, root, &err) < 0 || sysext_context_new(o, &c, &err) < 0 ||
        sysext_context_list(c, &list, &err) < 0 || sysext_context_plan(c, &plan, &err) < 0 ||
        sysext_context_status(c, &status, &err) < 0)
        return -1;
    /* An error, to be freed by its helper too. */
    if (sysext_options_set_mutable_mode_string(o, "bogus", &err) != -EINVAL || !err)
        return -1;
    return (int) sysext_extension_list_count(list) + (report ? 100 : 0);
}

static void test_cleanup_helpers(void) {
    const char *root = make_root("cleanup");
    CHECK(cleanup_scope(root) == 1); /* foo */
    /* The helpers accept NULL and a pointer to NULL. */
    sysext_context *none = NULL;
    sysext_context_freep(&none);
    sysext_context_freep(NULL);
    sysext_error_freep(NULL);
}

/* Without CAP_SYS_ADMIN, the mounting verbs fail with -EPERM (checked in a child that drops
 * all capabilities; only meaningful when started as root). */
static void test_unprivileged(void) {
    const char *root = make_root("unprivileged");
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (geteuid() == 0 && syscall(SYS_capset, &hdr, data) != 0)
            _exit(3);
        sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, -1);
        sysext_error *err = NULL;
        int bad = 0;
        if (sysext_context_merge(c, NULL, &err) != -EPERM)
            bad = 1;
        else if (sysext_error_get_kind(err) != SYSEXT_ERROR_KIND_NOT_PRIVILEGED || sysext_error_get_errno(err) != EPERM)
            bad = 2;
        sysext_error_free(err);
        if (sysext_context_unmerge(c, NULL, NULL) != -EPERM || sysext_context_refresh(c, NULL, NULL) != -EPERM)
            bad = 4;
        const char *names[] = {"foo"};
        if (sysext_context_merge_names(c, names, 1, NULL, NULL) != -EPERM ||
            sysext_context_unmerge_names(c, names, 1, NULL, NULL) != -EPERM)
            bad = 5;
        /* Reading needs no privilege. */
        sysext_plan *plan = NULL;
        if (sysext_context_plan(c, &plan, NULL) != 0)
            bad = 6;
        sysext_plan_free(plan);
        sysext_context_free(c);
        _exit(bad);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "unprivileged child: status %d\n", status);
}

/* One context, used by several threads at once. */
struct thread_arg {
    const sysext_context *ctx;
    int failures;
};

static void *hammer(void *p) {
    struct thread_arg *a = p;
    for (int i = 0; i < 10; i++) {
        sysext_plan *plan = NULL;
        sysext_extension_list *list = NULL;
        sysext_status *st = NULL;
        if (sysext_context_plan(a->ctx, &plan, NULL) != 0 || sysext_plan_extensions_count(plan) != 1)
            a->failures++;
        if (sysext_context_list(a->ctx, &list, NULL) != 0 || sysext_extension_list_count(list) != 1)
            a->failures++;
        if (sysext_context_status(a->ctx, &st, NULL) != 0 || sysext_status_count(st) != 2)
            a->failures++;
        sysext_plan_free(plan);
        sysext_extension_list_free(list);
        sysext_status_free(st);
    }
    return NULL;
}

static void test_threads(void) {
    const char *root = make_root("threads");
    sysext_context *c = context_for(SYSEXT_IMAGE_CLASS_SYSEXT, root, SYSEXT_MUTABLE_MODE_EPHEMERAL);
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].ctx = c;
        args[i].failures = 0;
        REQUIRE(pthread_create(&t[i], NULL, hammer, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        CHECK(args[i].failures == 0);
    }
    sysext_context_free(c);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_version();
    test_enum_strings();
    test_options();
    test_context_new();
    test_list();
    test_plan_modes();
    test_plan_details();
    test_status_unmerged();
    test_verbs_reject_bad_arguments();
    test_error_must_be_null_on_entry();
    test_cleanup_helpers();
    test_unprivileged();
    test_threads();
    return test_finish("test_api");
}
