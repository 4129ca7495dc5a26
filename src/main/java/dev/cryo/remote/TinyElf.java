package dev.cryo.remote;

import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A static x86_64 ELF of a few bytes of code, generated here and run from a memfd: Cryo's own
 * helper processes (the restore stub, the dirty-tracking keeper) need no file on disk and no libc.
 * <pre>
 *   0x00  ELF header (64 bytes)
 *   0x40  PT_LOAD        r-x  the whole file at {@code base}
 *   0x78  PT_GNU_STACK   rw-  (no executable stack)
 *   0xb0  code, entered at its first byte
 * </pre>
 */
public final class TinyElf {
    static final int CODE_OFFSET = 0xb0;

    private TinyElf() {
    }

    public static byte[] of(long base, byte[] code) {
        int size = CODE_OFFSET + code.length;
        ByteBuffer b = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1, 0}).putLong(0);   // 64-bit, little endian, SysV
        b.putShort((short) 2).putShort((short) 0x3e).putInt(1);           // ET_EXEC, x86_64, version 1
        b.putLong(base + CODE_OFFSET).putLong(0x40).putLong(0);           // entry, phoff, shoff
        b.putInt(0).putShort((short) 64).putShort((short) 56).putShort((short) 2); // flags, ehsize, phentsize, phnum
        b.putShort((short) 64).putShort((short) 0).putShort((short) 0);   // shentsize, shnum, shstrndx
        b.putInt(1).putInt(5).putLong(0).putLong(base).putLong(base)      // PT_LOAD, R|X, offset, vaddr, paddr
                .putLong(size).putLong(size).putLong(0x1000);             // filesz, memsz, align
        b.putInt(0x6474e551).putInt(6).putLong(0).putLong(0).putLong(0)   // PT_GNU_STACK, R|W
                .putLong(0).putLong(0).putLong(16);
        b.put(code);
        return b.array();
    }

    /**
     * Writes the ELF into a memfd and posix_spawns it with {@code argv}, passing {@code passFds}
     * as its fds 3, 4, ... (see {@link Sys#posixSpawn(String, String[], String[], int[])}).
     * Returns the child's pid.
     */
    public static int spawn(byte[] elf, String[] argv, int[] passFds) {
        return spawn(elf, argv, passFds, false);
    }

    /** The same, with Cryo's own stdin, stdout and stderr when {@code inheritStdio}, else /dev/null. */
    public static int spawn(byte[] elf, String[] argv, int[] passFds, boolean inheritStdio) {
        int memfd = Sys.memfdCreate(argv[0], 1 /* MFD_CLOEXEC */);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(elf.length);
            seg.copyFrom(MemorySegment.ofArray(elf));
            Sys.write(memfd, seg);
            // through our own /proc entry: the child closes every inherited fd before it execs
            return Sys.posixSpawn("/proc/" + Sys.getpid() + "/fd/" + memfd, argv, new String[0], passFds, inheritStdio);
        } finally {
            Sys.close(memfd);
        }
    }
}
