/*
 * A container at its pids.max: pid 1 forks children (each just waits) until fork fails with
 * EAGAIN, which is the pids controller saying no.
 * Check: a fork still fails with EAGAIN (the limit came back with the container); every child
 * is alive; after one child is killed and reaped exactly one fork succeeds again (the limit is
 * the same, not lower), and the next fails.
 */
#include "target.h"

#include <sys/wait.h>

#define MAX_CHILDREN 64

static pid_t children[MAX_CHILDREN];
static int count;

static pid_t spawn(void)
{
    pid_t pid = fork();
    if (pid == 0)
        for (;;)
            pause();
    return pid;
}

static void fork_must_fail(const char *when)
{
    pid_t pid = spawn();
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        target_fail("a fork %s succeeded: pids.max is not the container's limit", when);
    } else if (errno != EAGAIN) {
        target_fail("a fork %s failed with %s, not EAGAIN", when, strerror(errno));
    }
}

static void check(void)
{
    fork_must_fail("at the limit");
    for (int i = 0; i < count; i++)
        if (kill(children[i], 0) != 0 || waitpid(children[i], NULL, WNOHANG) != 0)
            target_fail("child %d (pid %d) is gone", i, children[i]);
    kill(children[count - 1], SIGKILL);
    if (waitpid(children[count - 1], NULL, 0) != children[count - 1])
        target_fail("waitpid(%d): %s", children[count - 1], strerror(errno));
    /* the pids controller uncharges a reaped task at once */
    children[count - 1] = spawn();
    if (children[count - 1] < 0)
        target_fail("a fork after one child exited failed: %s", strerror(errno));
    fork_must_fail("at the limit again");
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    while (count < MAX_CHILDREN) {
        pid_t pid = spawn();
        if (pid < 0) {
            if (errno != EAGAIN)
                target_die("fork: %s", strerror(errno));
            break;
        }
        children[count++] = pid;
    }
    if (count == 0 || count == MAX_CHILDREN)
        target_die("%d children before fork failed: no pids.max in force", count);
    char text[32];
    snprintf(text, sizeof text, "%d\n", count);
    target_write_file("children", text);
    target_serve_checks(check);
}
