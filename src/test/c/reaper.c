/*
 * Launcher of test targets: `reaper STATE command [args...]`. Not a target itself.
 *
 * Starts the command in a new session, with stdin from /dev/null, stdout and stderr to
 * STATE/out.log, default signal dispositions and an empty signal mask, then writes its pid to
 * STATE/pid (atomically) and reaps children until none is left.
 *
 * Why: the target must not be a child of the test JVM (whose process reaper would eat ptrace
 * stops), yet someone must reap it: PID 1 on these machines does not, and a zombie keeps its pid,
 * which a restore needs back. As a child subreaper this process also inherits and reaps whatever
 * the target's own children leave behind (e.g. a `sleep` of a killed bash), which would
 * otherwise stay zombies under PID 1 forever.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void child(const char *state, char **command)
{
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/out.log", state);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
        perror("reaper: redirecting");
        _exit(127);
    }
    close(in);
    close(out);
    /*
     * Whatever the JVM passed down, targets start from a known signal state. The raw syscall,
     * because glibc refuses to touch its own signals 32 and 33, which arrive here ignored.
     */
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } dfl = { SIG_DFL, 0, NULL, 0 };
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setsid() < 0)
        perror("reaper: setsid");
    execvp(command[0], command);
    fprintf(stderr, "reaper: cannot execute %s: %s\n", command[0], strerror(errno));
    _exit(127);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: reaper STATE command [args...]\n");
        return 2;
    }
    const char *state = argv[1];
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("reaper: PR_SET_CHILD_SUBREAPER");
    pid_t pid = fork();
    if (pid < 0) {
        perror("reaper: fork");
        return 1;
    }
    if (pid == 0)
        child(state, argv + 2);

    char tmp[PATH_MAX], final[PATH_MAX], text[32];
    snprintf(tmp, sizeof tmp, "%s/.pid.tmp", state);
    snprintf(final, sizeof final, "%s/pid", state);
    int len = snprintf(text, sizeof text, "%d\n", (int)pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) != 0 || rename(tmp, final) != 0)
        perror("reaper: writing pid");

    for (;;) {
        if (wait(NULL) < 0 && errno == ECHILD)
            return 0;
    }
}
