/*
 * SEM_UNDO target, for a container's own IPC namespace. A set of two semaphores starts at 5, 4.
 * A child takes 2 from semaphore 0 with SEM_UNDO (its adjustment +2) and adds 3 to semaphore 1
 * with SEM_UNDO (adjustment -3), then waits; the parent takes 2 from semaphore 1 without undo.
 * So the values are 3, 5 and the child's exit will make them 5, 2.
 * Check: the values are 3, 5; the child, told to exit, leaves 5, 2 behind (its adjustments
 * survived); then all is set up again as at the start, for the next check.
 */
#include "target.h"

#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>

static int id;
static pid_t child;

static void start_child(void)
{
    unsigned short start[2] = { 5, 4 };
    if (semctl(id, 0, SETALL, start) != 0)
        target_die("SETALL: %s", strerror(errno));
    int ready[2];
    if (pipe(ready) != 0)
        target_die("pipe: %s", strerror(errno));
    child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0) {
        struct sembuf ops[2] = { { 0, -2, SEM_UNDO }, { 1, 3, SEM_UNDO } };
        if (semop(id, ops, 2) != 0)
            _exit(3);
        close(ready[0]);
        close(ready[1]); /* the parent's read sees end of file: done */
        signal(SIGUSR2, SIG_DFL);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    while (read(ready[0], &c, 1) < 0 && errno == EINTR)
        ;
    close(ready[0]);
    struct sembuf take = { 1, -2, 0 };
    if (semop(id, &take, 1) != 0)
        target_die("semop: %s", strerror(errno));
}

static void expect(int v0, int v1, const char *when)
{
    int a = semctl(id, 0, GETVAL), b = semctl(id, 1, GETVAL);
    if (a != v0 || b != v1)
        target_fail("%s: semaphores are %d, %d, expected %d, %d", when, a, b, v0, v1);
}

static void check(void)
{
    expect(3, 5, "before the child exits");
    kill(child, SIGKILL);
    if (waitpid(child, NULL, 0) != child)
        target_fail("waitpid: %s", strerror(errno));
    expect(5, 2, "after the child's exit undid its operations");
    start_child();
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    if (id < 0)
        target_die("semget: %s", strerror(errno));
    start_child();
    target_serve_checks(check);
}
