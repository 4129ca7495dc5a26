package dev.cryo.proc;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link ProcMaps#parse} on /proc/PID/smaps recorded from a small program on kernel 6.18 that
 * mapped a file with two spaces in its name and a file it then deleted. The first entry is
 * whole; the others keep only some of their counters, which the parser must skip anyway.
 * Header lines end in a space for anonymous mappings, and VmFlags lines too, as the kernel
 * writes them.
 */
class ProcMapsTest {
    private static final String SMAPS = """
            55bdc5211000-55bdc5212000 r--p 00000000 fe:00 2147974                    /tmp/scratch/mapper
            Size:                  4 kB
            KernelPageSize:        4 kB
            MMUPageSize:           4 kB
            Rss:                   4 kB
            Pss:                   4 kB
            Pss_Dirty:             4 kB
            Shared_Clean:          0 kB
            Shared_Dirty:          0 kB
            Private_Clean:         0 kB
            Private_Dirty:         4 kB
            Referenced:            4 kB
            Anonymous:             0 kB
            KSM:                   0 kB
            LazyFree:              0 kB
            AnonHugePages:         0 kB
            ShmemPmdMapped:        0 kB
            FilePmdMapped:         0 kB
            Shared_Hugetlb:        0 kB
            Private_Hugetlb:       0 kB
            Swap:                  0 kB
            SwapPss:               0 kB
            Locked:                0 kB
            THPeligible:           0
            VmFlags: rd mr mw me\s
            55bdc5215000-55bdc5216000 rw-p 00003000 fe:00 2147974                    /tmp/scratch/mapper
            Size:                  4 kB
            Anonymous:             4 kB
            VmFlags: rd wr mr mw me ac\s
            55c5c57a9000-55c5c57eb000 rw-p 00000000 00:00 0                          [heap]
            Size:                264 kB
            Rss:                  44 kB
            Anonymous:            44 kB
            AnonHugePages:         0 kB
            VmFlags: rd wr mr mw me ac\s
            7fa9942e2000-7fa994438000 r-xp 00026000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
            Size:               1368 kB
            Rss:                 828 kB
            VmFlags: rd ex mr mw me\s
            7fa994491000-7fa99449e000 rw-p 00000000 00:00 0\s
            Size:                 52 kB
            VmFlags: rd wr mr mw me ac\s
            7fa9944a4000-7fa9944a5000 rw-p 00000000 fe:00 2147971                    /tmp/scratch/gone.bin (deleted)
            Size:                  4 kB
            VmFlags: rd wr mr mw me ac\s
            7fa9944a5000-7fa9944a7000 r--s 00000000 fe:00 2147970                    /tmp/scratch/my  data file.bin
            Size:                  8 kB
            Shared_Clean:          0 kB
            VmFlags: rd sh mr mw me ms\s
            7fa9944a9000-7fa9944ad000 r--p 00000000 00:00 0                          [vvar]
            Size:                 16 kB
            VmFlags: rd mr pf io de dd\s
            7fa9944ad000-7fa9944af000 r--p 00000000 00:00 0                          [vvar_vclock]
            Size:                  8 kB
            VmFlags: rd mr pf io de dd\s
            7fa9944af000-7fa9944b1000 r-xp 00000000 00:00 0                          [vdso]
            Size:                  8 kB
            Rss:                   4 kB
            VmFlags: rd ex mr mw me de\s
            7ffd7295c000-7ffd7297d000 rw-p 00000000 00:00 0                          [stack]
            Size:                132 kB
            Rss:                  12 kB
            VmFlags: rd wr mr mw me gd ac\s
            ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
            Size:                  4 kB
            VmFlags: ex\s
            """;

    private static final List<Vma> VMAS = ProcMaps.parse(SMAPS.lines().toList());

    @Test
    void everyMappingOnceInOrder() {
        assertThat(VMAS).extracting(Vma::start).containsExactly(0x55bdc5211000L, 0x55bdc5215000L, 0x55c5c57a9000L,
                0x7fa9942e2000L, 0x7fa994491000L, 0x7fa9944a4000L, 0x7fa9944a5000L, 0x7fa9944a9000L, 0x7fa9944ad000L,
                0x7fa9944af000L, 0x7ffd7295c000L, 0xffffffffff600000L);
    }

    @Test
    void fileMappingWithOffsetDeviceAndInode() {
        Vma libc = VMAS.get(3);
        assertThat(libc.start()).isEqualTo(0x7fa9942e2000L);
        assertThat(libc.end()).isEqualTo(0x7fa994438000L);
        assertThat(libc.length()).isEqualTo(1368 * 1024);
        assertThat(libc.perms()).isEqualTo("r-xp");
        assertThat(libc.readable()).isTrue();
        assertThat(libc.writable()).isFalse();
        assertThat(libc.executable()).isTrue();
        assertThat(libc.shared()).isFalse();
        assertThat(libc.offset()).isEqualTo(0x26000);
        assertThat(libc.dev()).isEqualTo("fe:00");
        assertThat(libc.inode()).isEqualTo(339380);
        assertThat(libc.fileBacked()).isTrue();
        assertThat(libc.pseudo()).isFalse();
        assertThat(libc.path()).isEqualTo("/usr/lib/x86_64-linux-gnu/libc.so.6");
        assertThat(libc.vmFlags()).isEqualTo(Set.of("rd", "ex", "mr", "mw", "me"));
        assertThat(libc.mapFilesName()).isEqualTo("7fa9942e2000-7fa994438000");
    }

    @Test
    void wholeEntryWithEveryCounter() {
        Vma first = VMAS.getFirst();
        assertThat(first.path()).isEqualTo("/tmp/scratch/mapper");
        assertThat(first.vmFlags()).isEqualTo(Set.of("rd", "mr", "mw", "me"));
        assertThat(VMAS.get(1).offset()).isEqualTo(0x3000);
    }

    @Test
    void pathWithSpacesIsKeptWhole() {
        Vma spaced = VMAS.get(6);
        assertThat(spaced.path()).isEqualTo("/tmp/scratch/my  data file.bin");
        assertThat(spaced.shared()).isTrue();
        assertThat(spaced.vmFlags()).contains("sh");
    }

    @Test
    void deletedFileKeepsTheKernelsSuffix() {
        Vma gone = VMAS.get(5);
        assertThat(gone.path()).isEqualTo("/tmp/scratch/gone.bin (deleted)");
        assertThat(gone.inode()).isEqualTo(2147971);
        assertThat(gone.writable()).isTrue();
    }

    @Test
    void anonymousMappingHasNoPath() {
        Vma anon = VMAS.get(4);
        assertThat(anon.path()).isEmpty();
        assertThat(anon.inode()).isZero();
        assertThat(anon.fileBacked()).isFalse();
        assertThat(anon.pseudo()).isFalse();
    }

    @Test
    void pseudoMappings() {
        assertThat(VMAS.get(2).path()).isEqualTo("[heap]");
        assertThat(VMAS.get(7).path()).isEqualTo("[vvar]");
        assertThat(VMAS.get(7).vmFlags()).contains("pf", "io");
        assertThat(VMAS.get(8).path()).isEqualTo("[vvar_vclock]");
        Vma vdso = VMAS.get(9);
        assertThat(vdso.path()).isEqualTo("[vdso]");
        assertThat(vdso.pseudo()).isTrue();
        assertThat(vdso.executable()).isTrue();
        assertThat(vdso.length()).isEqualTo(0x2000);
        Vma stack = VMAS.get(10);
        assertThat(stack.path()).isEqualTo("[stack]");
        assertThat(stack.vmFlags()).contains("gd");
        Vma vsyscall = VMAS.get(11);
        assertThat(vsyscall.path()).isEqualTo("[vsyscall]");
        assertThat(vsyscall.start()).isEqualTo(0xffffffffff600000L);
        assertThat(vsyscall.length()).isEqualTo(0x1000);
        assertThat(vsyscall.perms()).isEqualTo("--xp");
        assertThat(vsyscall.vmFlags()).containsExactly("ex");
    }

    @Test
    void plainMapsWithoutVmFlagsParseToo() {
        List<Vma> maps = ProcMaps.parse(List.of(
                "7fa9944af000-7fa9944b1000 r-xp 00000000 00:00 0                          [vdso]",
                "7fa9944a5000-7fa9944a7000 r--s 00000000 fe:00 2147970                    /tmp/scratch/my  data file.bin"));
        assertThat(maps).extracting(Vma::path).containsExactly("[vdso]", "/tmp/scratch/my  data file.bin");
        assertThat(maps).allSatisfy(v -> assertThat(v.vmFlags()).isEmpty());
    }

    @Test
    void thisProcessesOwnSmaps() {
        List<Vma> own = ProcMaps.read((int) ProcessHandle.current().pid());
        assertThat(own).isNotEmpty();
        assertThat(own).allSatisfy(v -> {
            assertThat(v.end()).isGreaterThan(v.start());
            assertThat(v.vmFlags()).as(v.toString()).isNotEmpty();
            assertThat(v.vmFlags().contains("rd")).as(v.toString()).isEqualTo(v.readable());
        });
        assertThat(own).extracting(Vma::path).contains("[stack]", "[vdso]");
        for (int i = 1; i < own.size(); i++) {
            assertThat(Long.compareUnsigned(own.get(i).start(), own.get(i - 1).end())).isGreaterThanOrEqualTo(0);
        }
    }
}
