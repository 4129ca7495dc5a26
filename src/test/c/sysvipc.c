/*
 * SysV IPC target, for a container's own IPC namespace. Sets up three shm segments:
 *   A  IPC_PRIVATE, 3 pages, attached: a pattern, and a counter the main loop bumps every 10 ms
 *   B  key 0x43727931, 2 pages, not attached by anyone: a text written through a passing attach
 *   C  IPC_PRIVATE, 1 page, attached, then marked for destruction (IPC_RMID) while attached
 * a semaphore set (key 0x43727932) of 3 with values 7, 0, 32767 (SEMVMX), and a message queue (key
 * 0x43727933) holding two messages of types 5 and 2.
 *
 * Check: A is still attached at its address with its pattern and id, and the counter moved;
 * B is found again by its key with its id and text; C keeps its contents and is still marked
 * for destruction (SHM_DEST); the semaphores and the messages are found by key with their ids,
 * values and texts (the messages copied with MSG_COPY, so each check leaves them in place).
 */
#include "target.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define KEY_SEM 0x43727932
#define KEY_MSG 0x43727933
#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

static int id_sem, id_msg;
static const unsigned short sem_values[3] = { 7, 0, 32767 };
static const char *msg_texts[2] = { "first message, type 5", "second, type 2" };
static const long msg_types[2] = { 5, 2 };

static void check_sem_msg(void)
{
    if (semget(KEY_SEM, 0, 0) != id_sem)
        target_fail("semaphore set by its key is not id %d: %s", id_sem, strerror(errno));
    unsigned short now[3];
    if (semctl(id_sem, 0, GETALL, now) != 0)
        target_fail("semctl(GETALL): %s", strerror(errno));
    else if (memcmp(now, sem_values, sizeof now) != 0)
        target_fail("semaphores are %u %u %u", now[0], now[1], now[2]);
    if (msgget(KEY_MSG, 0) != id_msg)
        target_fail("message queue by its key is not id %d: %s", id_msg, strerror(errno));
    for (int i = 0; i < 2; i++) {
        struct { long type; char text[64]; } m;
        memset(&m, 0, sizeof m);
        ssize_t n = msgrcv(id_msg, &m, sizeof m.text, i, IPC_NOWAIT | MSG_COPY);
        if (n != (ssize_t)strlen(msg_texts[i]) || m.type != msg_types[i] || strcmp(m.text, msg_texts[i]) != 0)
            target_fail("message %d: %zd bytes, type %ld, '%.40s' (%s)", i, n, m.type, m.text,
                        n < 0 ? strerror(errno) : "");
    }
}

#define KEY_B 0x43727931
#define PAGE 4096

static int id_a, id_b, id_c;
static unsigned char *a, *c;
static uint64_t counter_at_last_check;
static const char text_b[] = "segment B, kept by its key with nobody attached";

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + 3);
}

static void check(void)
{
    check_sem_msg();
    volatile uint64_t *counter = (volatile uint64_t *)a;
    for (size_t i = 8; i < 3 * PAGE; i++)
        if (a[i] != pattern(i)) {
            target_fail("segment A byte %zu is %u, expected %u", i, a[i], pattern(i));
            break;
        }
    if (*counter <= counter_at_last_check)
        target_fail("segment A counter %llu did not move (last check %llu)",
                    (unsigned long long)*counter, (unsigned long long)counter_at_last_check);
    counter_at_last_check = *counter;
    struct shmid_ds ds;
    if (shmctl(id_a, IPC_STAT, &ds) != 0 || ds.shm_segsz != 3 * PAGE)
        target_fail("segment A (id %d) is gone or changed: %s", id_a, strerror(errno));

    int b = shmget(KEY_B, 0, 0);
    if (b != id_b) {
        target_fail("segment B by its key is id %d (%s), expected %d", b, strerror(errno), id_b);
    } else {
        char *p = shmat(id_b, NULL, SHM_RDONLY);
        if (p == (void *)-1)
            target_fail("shmat(B): %s", strerror(errno));
        else {
            if (memcmp(p, text_b, sizeof text_b) != 0)
                target_fail("segment B holds '%.40s'", p);
            shmdt(p);
        }
    }

    if (strcmp((char *)c, "segment C, marked for destruction") != 0)
        target_fail("segment C holds '%.40s'", c);
    if (shmctl(id_c, IPC_STAT, &ds) != 0)
        target_fail("segment C (id %d): %s", id_c, strerror(errno));
    else if (!(ds.shm_perm.mode & SHM_DEST))
        target_fail("segment C is no longer marked for destruction (mode %o)", ds.shm_perm.mode);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    id_a = shmget(IPC_PRIVATE, 3 * PAGE, IPC_CREAT | 0600);
    id_b = shmget(KEY_B, 2 * PAGE, IPC_CREAT | IPC_EXCL | 0640);
    id_c = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    if (id_a < 0 || id_b < 0 || id_c < 0)
        target_die("shmget: %s", strerror(errno));
    a = shmat(id_a, NULL, 0);
    c = shmat(id_c, NULL, 0);
    char *b = shmat(id_b, NULL, 0);
    if (a == (void *)-1 || c == (void *)-1 || b == (void *)-1)
        target_die("shmat: %s", strerror(errno));
    for (size_t i = 8; i < 3 * PAGE; i++)
        a[i] = pattern(i);
    memcpy(b, text_b, sizeof text_b);
    shmdt(b);
    strcpy((char *)c, "segment C, marked for destruction");
    if (shmctl(id_c, IPC_RMID, NULL) != 0)
        target_die("shmctl(C, IPC_RMID): %s", strerror(errno));

    id_sem = semget(KEY_SEM, 3, IPC_CREAT | IPC_EXCL | 0600);
    id_msg = msgget(KEY_MSG, IPC_CREAT | IPC_EXCL | 0600);
    if (id_sem < 0 || id_msg < 0)
        target_die("semget/msgget: %s", strerror(errno));
    if (semctl(id_sem, 0, SETALL, sem_values) != 0)
        target_die("semctl(SETALL): %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        struct { long type; char text[64]; } m;
        m.type = msg_types[i];
        strcpy(m.text, msg_texts[i]);
        if (msgsnd(id_msg, &m, strlen(msg_texts[i]), 0) != 0)
            target_die("msgsnd: %s", strerror(errno));
    }

    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
        (*(volatile uint64_t *)a)++;
    }
}
