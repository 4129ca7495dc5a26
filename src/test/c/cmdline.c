/*
 * Process-identity target, run as `cmdline STATE alpha beta` with CRYO_TEST_ENV=hello: the
 * things a process is besides its memory and files. Sets comm, personality, nice 5,
 * RLIMIT_NOFILE soft 777 and RLIMIT_CORE soft 0, and grows brk by 1 MiB filled with a pattern.
 *
 * Check: /proc/self/cmdline is argv as given; CRYO_TEST_ENV is "hello" both to getenv and in
 * /proc/self/environ, and environ still points where it did; comm is "cryo-comm"; the exe
 * link, personality, nice value and rlimits are as set; the brk is where it was with the
 * pattern intact; the mm fields of /proc/self/stat (code, data, brk, stack, arg and env
 * bounds) and /proc/self/auxv are unchanged; getpid() is the pid said in STATE/ready.
 *
 * After the sbrk nothing may malloc, or the brk would move: only raw syscalls and
 * stack buffers below.
 */
#include "target.h"

#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#define BRK_GROWTH (1024 * 1024)
#define NICE 5
#define NOFILE_SOFT 777

extern char **environ;

static char cmdline_expected[4096];
static size_t cmdline_len;
static char **environ_at_start;
static char *environ0_at_start;
static char exe_at_start[PATH_MAX];
static int personality_at_start;
static struct rlimit nofile_at_start, core_at_start;
static unsigned char *brk_area;
static void *brk_at_start;
static char auxv_at_start[4096];
static ssize_t auxv_len;

/* mm fields of /proc/self/stat, by field number (see proc(5)). */
static const int stat_fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
static const char *const stat_names[] = { "startcode", "endcode", "startstack", "start_data",
                                          "end_data", "start_brk", "arg_start", "arg_end",
                                          "env_start", "env_end" };
#define STAT_FIELDS (sizeof stat_fields / sizeof stat_fields[0])
static unsigned long long stat_at_start[STAT_FIELDS];

static unsigned char brk_byte(size_t i)
{
    return (unsigned char)(i * 11 + 5 + (i >> 10));
}

static int read_stat_fields(unsigned long long *out)
{
    char stat[2048];
    if (target_read_file("/proc/self/stat", stat, sizeof stat) < 0)
        return target_fail("reading /proc/self/stat: %s", strerror(errno));
    char *p = strrchr(stat, ')');
    if (p == NULL)
        return target_fail("unparsable /proc/self/stat");
    p += 2; /* field 3 starts here */
    int field = 3;
    size_t next = 0;
    while (*p && next < STAT_FIELDS) {
        if (field == stat_fields[next])
            out[next++] = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
        if (p == NULL)
            break;
        p++;
        field++;
    }
    if (next < STAT_FIELDS)
        return target_fail("/proc/self/stat has too few fields");
    return 0;
}

/* Reads a file that may contain NULs; returns its length or -1. */
static ssize_t read_binary(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    ssize_t n;
    while (done < size && (n = read(fd, buf + done, size - done)) > 0)
        done += (size_t)n;
    close(fd);
    return (ssize_t)done;
}

static void setup(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]) + 1;
        if (cmdline_len + len > sizeof cmdline_expected)
            target_die("command line too long");
        memcpy(cmdline_expected + cmdline_len, argv[i], len);
        cmdline_len += len;
    }
    environ_at_start = environ;
    environ0_at_start = environ != NULL ? environ[0] : NULL;
    ssize_t n = readlink("/proc/self/exe", exe_at_start, sizeof exe_at_start - 1);
    if (n < 0)
        target_die("readlink /proc/self/exe: %s", strerror(errno));
    exe_at_start[n] = '\0';

    if (prctl(PR_SET_NAME, "cryo-comm", 0, 0, 0) != 0)
        target_die("PR_SET_NAME: %s", strerror(errno));
    /* A flag no launcher sets, so a restore that forgets the personality is seen. */
    int pers = personality(0xffffffff);
    if (pers < 0 || personality((unsigned long)pers | ADDR_NO_RANDOMIZE) < 0)
        target_die("personality: %s", strerror(errno));
    personality_at_start = personality(0xffffffff);
    errno = 0;
    if (setpriority(PRIO_PROCESS, 0, NICE) != 0)
        target_die("setpriority: %s", strerror(errno));

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        target_die("getrlimit: %s", strerror(errno));
    rl.rlim_cur = NOFILE_SOFT;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &nofile_at_start) != 0)
        target_die("RLIMIT_NOFILE: %s", strerror(errno));
    if (getrlimit(RLIMIT_CORE, &rl) != 0)
        target_die("getrlimit: %s", strerror(errno));
    rl.rlim_cur = 0;
    if (setrlimit(RLIMIT_CORE, &rl) != 0 || getrlimit(RLIMIT_CORE, &core_at_start) != 0)
        target_die("RLIMIT_CORE: %s", strerror(errno));

    brk_area = sbrk(BRK_GROWTH);
    if (brk_area == (void *)-1)
        target_die("sbrk: %s", strerror(errno));
    for (size_t i = 0; i < BRK_GROWTH; i++)
        brk_area[i] = brk_byte(i);
    brk_at_start = sbrk(0);

    auxv_len = read_binary("/proc/self/auxv", auxv_at_start, sizeof auxv_at_start);
    if (auxv_len <= 0)
        target_die("reading /proc/self/auxv: %s", strerror(errno));
    if (read_stat_fields(stat_at_start) != 0)
        target_die("%s", target_fail_reason);
}

static void check(void)
{
    char buf[8192];
    ssize_t n = read_binary("/proc/self/cmdline", buf, sizeof buf);
    if (n != (ssize_t)cmdline_len || memcmp(buf, cmdline_expected, cmdline_len) != 0) {
        for (ssize_t i = 0; i + 1 < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n > 0 ? n - 1 : 0] = '\0';
        target_fail("/proc/self/cmdline is \"%s\" (%zd bytes), expected argv (%zu bytes)", buf,
                    n, cmdline_len);
    }

    const char *env = getenv("CRYO_TEST_ENV");
    if (env == NULL || strcmp(env, "hello") != 0)
        target_fail("CRYO_TEST_ENV is %s%s%s, expected \"hello\"", env ? "\"" : "",
                    env ? env : "unset", env ? "\"" : "");
    if (environ != environ_at_start || (environ != NULL && environ[0] != environ0_at_start))
        target_fail("environ moved");
    n = read_binary("/proc/self/environ", buf, sizeof buf - 1);
    if (n < 0) {
        target_fail("reading /proc/self/environ: %s", strerror(errno));
    } else {
        buf[n] = '\0';
        int found = 0;
        for (char *p = buf; p < buf + n; p += strlen(p) + 1)
            if (strcmp(p, "CRYO_TEST_ENV=hello") == 0)
                found = 1;
        if (!found)
            target_fail("/proc/self/environ lacks CRYO_TEST_ENV=hello");
    }

    if (target_read_file("/proc/self/comm", buf, sizeof buf) < 0)
        target_fail("reading /proc/self/comm: %s", strerror(errno));
    else if (buf[strcspn(buf, "\n")] = '\0', strcmp(buf, "cryo-comm") != 0)
        target_fail("/proc/self/comm is \"%.32s\", expected \"cryo-comm\"", buf);

    char exe[PATH_MAX];
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        target_fail("readlink /proc/self/exe: %s", strerror(errno));
    else if (exe[n] = '\0', strcmp(exe, exe_at_start) != 0)
        target_fail("/proc/self/exe is %s, expected %s", exe, exe_at_start);

    int pers = personality(0xffffffff);
    if (pers != personality_at_start)
        target_fail("personality is %#x, expected %#x", pers, personality_at_start);

    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (errno != 0 || nice != NICE)
        target_fail("nice is %d, expected %d", nice, NICE);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != nofile_at_start.rlim_cur ||
        rl.rlim_max != nofile_at_start.rlim_max)
        target_fail("RLIMIT_NOFILE is %llu/%llu, expected %llu/%llu",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                    (unsigned long long)nofile_at_start.rlim_cur,
                    (unsigned long long)nofile_at_start.rlim_max);
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != core_at_start.rlim_cur ||
        rl.rlim_max != core_at_start.rlim_max)
        target_fail("RLIMIT_CORE is %llu/%llu, expected %llu/%llu",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                    (unsigned long long)core_at_start.rlim_cur,
                    (unsigned long long)core_at_start.rlim_max);

    void *brk_now = sbrk(0);
    if (brk_now != brk_at_start)
        target_fail("brk is %p, expected %p", brk_now, brk_at_start);
    for (size_t i = 0; i < BRK_GROWTH; i++)
        if (brk_area[i] != brk_byte(i)) {
            target_fail("brk area byte %zu changed", i);
            break;
        }

    unsigned long long stat_now[STAT_FIELDS];
    if (read_stat_fields(stat_now) == 0)
        for (size_t i = 0; i < STAT_FIELDS; i++)
            if (stat_now[i] != stat_at_start[i])
                target_fail("/proc/self/stat %s is %#llx, expected %#llx", stat_names[i],
                            stat_now[i], stat_at_start[i]);

    n = read_binary("/proc/self/auxv", buf, sizeof buf);
    if (n != auxv_len || memcmp(buf, auxv_at_start, (size_t)auxv_len) != 0)
        target_fail("/proc/self/auxv changed (%zd bytes, was %zd)", n, auxv_len);

    char path[PATH_MAX];
    target_path(path, "ready");
    if (target_read_file(path, buf, sizeof buf) < 0)
        target_fail("reading STATE/ready: %s", strerror(errno));
    else if (atoi(buf) != getpid())
        target_fail("getpid() is %d but STATE/ready says %d", (int)getpid(), atoi(buf));
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    setup(argc, argv);
    target_serve_checks(check);
}
