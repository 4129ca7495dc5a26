package dev.cryo.remote;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The restore stub's ELF, byte by byte as the kernel's loader reads it, and then run for real:
 * the kernel must load it at its base and it must sit in pause() forever.
 */
class RestoreStubTest {
    private static final byte[] ELF = RestoreStub.elf();
    private static final ByteBuffer B = ByteBuffer.wrap(ELF).order(ByteOrder.LITTLE_ENDIAN);
    private static final int PT_LOAD = 1, PT_GNU_STACK = 0x6474e551, PF_X = 1, PF_W = 2, PF_R = 4;

    @Test
    void identIsElf64LittleEndianSysV() {
        assertThat(Arrays.copyOf(ELF, 16)).containsExactly(0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    }

    @Test
    void headerIsAnX86_64Executable() {
        assertThat(B.getShort(16)).as("e_type ET_EXEC").isEqualTo((short) 2);
        assertThat(B.getShort(18)).as("e_machine EM_X86_64").isEqualTo((short) 0x3e);
        assertThat(B.getInt(20)).as("e_version").isEqualTo(1);
        assertThat(B.getLong(32)).as("e_phoff").isEqualTo(64);
        assertThat(B.getLong(40)).as("e_shoff").isZero();
        assertThat(B.getShort(52)).as("e_ehsize").isEqualTo((short) 64);
        assertThat(B.getShort(54)).as("e_phentsize").isEqualTo((short) 56);
        assertThat(B.getShort(56)).as("e_phnum").isEqualTo((short) 2);
        assertThat(B.getShort(60)).as("e_shnum").isZero();
    }

    @Test
    void loadSegmentMapsTheWholeFileAtTheBaseReadAndExecute() {
        int ph = 64;
        assertThat(B.getInt(ph)).as("p_type").isEqualTo(PT_LOAD);
        assertThat(B.getInt(ph + 4)).as("p_flags").isEqualTo(PF_R | PF_X);
        assertThat(B.getLong(ph + 8)).as("p_offset").isZero();
        assertThat(B.getLong(ph + 16)).as("p_vaddr").isEqualTo(RestoreStub.BASE);
        assertThat(B.getLong(ph + 32)).as("p_filesz").isEqualTo(ELF.length);
        assertThat(B.getLong(ph + 40)).as("p_memsz").isEqualTo(ELF.length);
        assertThat(RestoreStub.BASE % B.getLong(ph + 48)).as("base aligned to p_align").isZero();
    }

    @Test
    void stackIsNotExecutable() {
        int ph = 64 + 56;
        assertThat(B.getInt(ph)).as("p_type").isEqualTo(PT_GNU_STACK);
        assertThat(B.getInt(ph + 4)).as("p_flags").isEqualTo(PF_R | PF_W);
    }

    @Test
    void entryIsThePauseLoopAndTheSyscallInstructionIsWhereInjectionExpectsIt() {
        long entry = B.getLong(24);
        int code = (int) (entry - RestoreStub.BASE);
        assertThat(code).isBetween(64 + 2 * 56, ELF.length - 9);
        // mov eax, 34 (__NR_pause); syscall; jmp back to the mov
        assertThat(Arrays.copyOfRange(ELF, code, code + 9))
                .containsExactly(0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7);
        assertThat(RestoreStub.SYSCALL_INSN.value()).isEqualTo(entry + 5);
        int jmpEnd = code + 9;
        assertThat(jmpEnd + ELF[code + 8]).as("jmp target").isEqualTo(code);
        assertThat(ELF.length).isEqualTo(code + 9);
    }

    @Test
    void theKernelRunsItAndItWaitsInPause(@TempDir Path tmp) throws Exception {
        Path stub = tmp.resolve("stub");
        Files.write(stub, ELF);
        Files.setPosixFilePermissions(stub, PosixFilePermissions.fromString("rwx------"));
        // Not traced, so the JVM's process reaper may wait for it.
        Process p = new ProcessBuilder(stub.toString()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            // /proc/PID/syscall: the number of the system call the task is blocked in, then its arguments
            String syscall = "";
            while (!syscall.startsWith("34 ") && p.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(10);
                syscall = Files.readString(Path.of("/proc", Long.toString(p.pid()), "syscall"));
            }
            assertThat(p.isAlive()).as("the stub runs").isTrue();
            assertThat(syscall).as("blocked in pause (34)").startsWith("34 ");
            List<String> maps = Files.readAllLines(Path.of("/proc", Long.toString(p.pid()), "maps"));
            assertThat(maps).anySatisfy(l -> assertThat(l).startsWith(Long.toHexString(RestoreStub.BASE) + "-")
                    .contains(" r-xp "));
            assertThat(maps).noneSatisfy(l -> assertThat(l).contains("[heap]"));
            assertThat(Files.readString(Path.of("/proc", Long.toString(p.pid()), "stat")))
                    .as("sleeping in pause()").contains(") S ");
        } finally {
            p.destroyForcibly();
            p.waitFor(5, TimeUnit.SECONDS);
        }
    }
}
