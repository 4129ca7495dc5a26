/*
 * Forker target: has one child process that beats a counter in memory shared with its parent.
 * Started as `forker STATE pipe`, the parent first makes a pipe (fds 10 and 11, a message unread
 * in it) that the child inherits: Cryo cannot save pipes, so the checkpoint of this tree is
 * refused, after both processes were frozen, and must leave both running. The child dies with
 * its parent (PR_SET_PDEATHSIG), so nothing is left behind when the test kills the target.
 *
 * Check: the child still exists, is not a zombie (waitpid WNOHANG finds nothing to reap) and
 * is still ours (its parent pid is ours); its heartbeat moved since the previous check; the
 * parent's counter (in .bss and on the stack) agrees with itself and moved too; with a pipe,
 * the message is still all in it.
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define READ_FD 10
#define WRITE_FD 11
static const char message[] = "parent and child saw this";
static int with_pipe;

static volatile uint64_t counter;
static uint64_t counter_at_last_check;
static volatile uint64_t *heartbeat; /* shared with the child */
static uint64_t heartbeat_at_last_check;
static pid_t child;

static void run_child(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
    signal(SIGUSR2, SIG_IGN);
    for (;;) {
        (*heartbeat)++;
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static void check(uint64_t stack_counter)
{
    target_check_counter(counter, stack_counter, &counter_at_last_check);

    int status;
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r != 0)
        target_fail("child %d has ended (waitpid returned %d, status %#x)", (int)child, (int)r, status);

    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
    if (target_read_file(path, stat, sizeof stat) < 0) {
        target_fail("reading %s: %s", path, strerror(errno));
    } else {
        char *close = strrchr(stat, ')');
        char state;
        int ppid;
        if (close == NULL || sscanf(close + 1, " %c %d", &state, &ppid) != 2)
            target_fail("cannot parse %s", path);
        else if (ppid != getpid())
            target_fail("child %d has parent %d, expected %d", (int)child, ppid, (int)getpid());
    }

    uint64_t beat = *heartbeat;
    if (beat <= heartbeat_at_last_check)
        target_fail("child heartbeat %llu did not move since last check", (unsigned long long)beat);
    heartbeat_at_last_check = beat;

    if (with_pipe)
        target_check_pipe_holds(READ_FD, sizeof message - 1);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    with_pipe = argc > 2 && strcmp(argv[2], "pipe") == 0;
    if (with_pipe) {
        target_pipe_at(READ_FD, WRITE_FD);
        target_hold_unsupported_fd(12);
        if (write(WRITE_FD, message, sizeof message - 1) != (ssize_t)sizeof message - 1)
            target_die("write to pipe: %s", strerror(errno));
    }
    heartbeat = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (heartbeat == MAP_FAILED)
        target_die("mmap: %s", strerror(errno));
    pid_t parent = getpid();
    child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0)
        run_child(parent);
    while (*heartbeat == 0)
        target_sleep_ms(1);
    char text[32];
    snprintf(text, sizeof text, "%d\n", (int)child);
    if (target_write_file("child", text) != 0)
        target_die("writing child: %s", strerror(errno));

    target_count_forever(&counter, check);
}
