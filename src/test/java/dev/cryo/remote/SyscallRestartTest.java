package dev.cryo.remote;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Regs;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** How an interrupted system call is written into the image. */
class SyscallRestartTest {
    private static final long ERESTART_RESTARTBLOCK = -516, EINTR = -4, RIP = 0x401002;

    private static Regs interrupted(int nr, long rdx) {
        Regs r = new Regs(new long[Regs.NAMES.size()]);
        r.rax(ERESTART_RESTARTBLOCK);
        r.origRax(nr);
        r.rip(RIP);
        long[] v = r.values();
        v[Regs.NAMES.indexOf("rdx")] = rdx;
        return new Regs(v);
    }

    @Test
    void pollWithoutTimeoutRunsAgain() {
        Regs out = SyscallRestart.forImage(interrupted(Nr.POLL, 0xffffffffL));
        assertThat(out.rax()).isEqualTo(Nr.POLL);
        assertThat(out.rip()).isEqualTo(RIP - 2);
    }

    @Test
    void pollWithTimeoutAndNanosleepGetEintr() {
        for (Regs in : new Regs[] {interrupted(Nr.POLL, 1000), interrupted(Nr.NANOSLEEP, 0)}) {
            Regs out = SyscallRestart.forImage(in);
            assertThat(out.rax()).isEqualTo(EINTR);
            assertThat(out.rip()).isEqualTo(RIP);
        }
    }
}
