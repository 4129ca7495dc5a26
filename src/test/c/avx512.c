/*
 * AVX-512 target: keeps known values in zmm5, zmm17, zmm31 (low, upper-256 and high-16
 * parts of the AVX-512 state) and in the mask registers k1..k3, across checkpoints.
 *
 * The whole loop is one asm block: load the registers, then repeat { raw nanosleep syscall;
 * compare every register with its copy in memory; count the pass } until a check is
 * requested. Nothing in between may clobber them (glibc's string functions use zmm16-31),
 * so no function is called inside; the kernel's own syscall path keeps them intact.
 * Compares use k4 as scratch.
 *
 * Check: no pass ever saw a register differ from its copy, and the loop is iterating.
 * Without AVX-512 the target says ready with "SKIP" instead of its pid.
 */
#include "target.h"

#include <sys/syscall.h>

static uint64_t ref_zmm5[8] __attribute__((aligned(64)));
static uint64_t ref_zmm17[8] __attribute__((aligned(64)));
static uint64_t ref_zmm31[8] __attribute__((aligned(64)));
static uint16_t ref_k1 = 0xa5c3, ref_k2 = 0x1e2d, ref_k3 = 0xf00f;

static volatile uint64_t iterations;
static uint64_t iterations_at_last_check;

/* 0 while all is well, else the first register found wrong. */
static int bad;
static const char *const reg_names[] = { "", "zmm5", "zmm17", "zmm31", "k1", "k2", "k3" };

/* Loads the registers and loops until a check is requested; returns 0 or a reg_names index. */
static int hold_registers(void)
{
    struct timespec ts = { 0, 10 * 1000000L };
    uint64_t mismatch;
    __asm__ volatile(
        "vmovdqu64 %[r5], %%zmm5\n\t"
        "vmovdqu64 %[r17], %%zmm17\n\t"
        "vmovdqu64 %[r31], %%zmm31\n\t"
        "kmovw %[k1v], %%k1\n\t"
        "kmovw %[k2v], %%k2\n\t"
        "kmovw %[k3v], %%k3\n\t"
        "1:\n\t"
        "mov %[nr], %%eax\n\t"
        "mov %[ts], %%rdi\n\t"
        "xor %%esi, %%esi\n\t"
        "syscall\n\t"
        "mov $1, %[mm]\n\t"
        "vpcmpeqq %[r5], %%zmm5, %%k4\n\t"
        "kmovw %%k4, %%eax\n\t"
        "cmp $0xff, %%eax\n\t"
        "jne 2f\n\t"
        "mov $2, %[mm]\n\t"
        "vpcmpeqq %[r17], %%zmm17, %%k4\n\t"
        "kmovw %%k4, %%eax\n\t"
        "cmp $0xff, %%eax\n\t"
        "jne 2f\n\t"
        "mov $3, %[mm]\n\t"
        "vpcmpeqq %[r31], %%zmm31, %%k4\n\t"
        "kmovw %%k4, %%eax\n\t"
        "cmp $0xff, %%eax\n\t"
        "jne 2f\n\t"
        "mov $4, %[mm]\n\t"
        "kmovw %%k1, %%eax\n\t"
        "cmpw %[k1v], %%ax\n\t"
        "jne 2f\n\t"
        "mov $5, %[mm]\n\t"
        "kmovw %%k2, %%eax\n\t"
        "cmpw %[k2v], %%ax\n\t"
        "jne 2f\n\t"
        "mov $6, %[mm]\n\t"
        "kmovw %%k3, %%eax\n\t"
        "cmpw %[k3v], %%ax\n\t"
        "jne 2f\n\t"
        "incq %[iters]\n\t"
        "cmpl $0, %[flag]\n\t"
        "je 1b\n\t"
        "xor %[mm], %[mm]\n\t"
        "2:\n\t"
        : [mm] "=&r"(mismatch), [iters] "+m"(iterations)
        : [r5] "m"(ref_zmm5), [r17] "m"(ref_zmm17), [r31] "m"(ref_zmm31),
          [k1v] "m"(ref_k1), [k2v] "m"(ref_k2), [k3v] "m"(ref_k3),
          [nr] "i"(SYS_nanosleep), [ts] "r"(&ts), [flag] "m"(target_check_flag)
        /* The syscall instruction itself clobbers rcx and r11. */
        : "rax", "rdi", "rsi", "rcx", "r11", "xmm5", "xmm17", "xmm31", "k1", "k2", "k3", "k4",
          "cc", "memory");
    return (int)mismatch;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        target_ready_text("SKIP\n");
        for (;;)
            pause();
    }
    for (int i = 0; i < 8; i++) {
        ref_zmm5[i] = 0x0123456789abcdefULL ^ ((uint64_t)i * 0x1111111111111111ULL);
        ref_zmm17[i] = 0xfedcba9876543210ULL + (uint64_t)i * 0x0101010101010101ULL;
        ref_zmm31[i] = 0xc3a5c3a5deadbeefULL ^ ((uint64_t)(i + 1) << (i * 7));
    }
    target_ready();
    for (;;) {
        int mismatch = hold_registers();
        if (mismatch != 0) {
            if (bad == 0) {
                bad = mismatch;
                fprintf(stderr, "[%d] %s lost its value\n", (int)getpid(), reg_names[mismatch]);
            }
            continue;
        }
        if (target_check_requested()) {
            if (bad != 0)
                target_fail("%s lost its value", reg_names[bad]);
            if (iterations <= iterations_at_last_check)
                target_fail("register loop did not iterate since last check");
            iterations_at_last_check = iterations;
            target_report();
        }
    }
}
