package dev.cryo.remote;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link Trampoline#findHole}: the lowest 64 KiB-aligned gap of {@link Trampoline#SIZE} bytes,
 * at or above 1 MiB, that overlaps none of the given ranges.
 */
class TrampolineTest {
    private static final long LOWEST = 0x100000L;
    private static final long SIZE = Trampoline.SIZE;

    private static long[] r(long start, long end) {
        return new long[] {start, end};
    }

    /** The hole is aligned, inside the user address space, and overlaps no range. */
    private static long hole(List<long[]> taken) {
        long at = Trampoline.findHole(taken);
        assertThat(at % 0x10000).as("64 KiB aligned").isZero();
        assertThat(at).isGreaterThanOrEqualTo(LOWEST);
        assertThat(at + SIZE).isLessThanOrEqualTo(0x7ff000000000L);
        for (long[] range : taken) {
            boolean overlaps = Long.compareUnsigned(at, range[1]) < 0 && Long.compareUnsigned(range[0], at + SIZE) < 0;
            assertThat(overlaps).as("hole %x overlaps %x-%x", at, range[0], range[1]).isFalse();
        }
        return at;
    }

    @Test
    void emptyAddressSpaceGivesTheLowestAddress() {
        assertThat(hole(List.of())).isEqualTo(LOWEST);
    }

    @Test
    void rangesBelowTheLowestAddressDoNotMatter() {
        assertThat(hole(List.of(r(0x1000, 0x2000), r(0x10000, 0xf0000)))).isEqualTo(LOWEST);
    }

    @Test
    void rangeAtTheLowestAddressPushesItPastItsEndRoundedUp() {
        assertThat(hole(List.of(r(LOWEST, 0x123456)))).isEqualTo(0x130000L);
        assertThat(hole(List.of(r(LOWEST, 0x130000)))).as("already aligned").isEqualTo(0x130000L);
    }

    @Test
    void gapTooSmallIsSkipped() {
        // 0x200000-0x20f000 is free but 4 KiB short of the trampoline
        List<long[]> taken = List.of(r(LOWEST, 0x200000), r(0x200000 + SIZE - 0x1000, 0x300000));
        assertThat(hole(taken)).isEqualTo(0x300000L);
    }

    @Test
    void gapOfExactlyTheSizeIsTaken() {
        List<long[]> taken = List.of(r(LOWEST, 0x200000), r(0x200000 + SIZE, 0x300000));
        assertThat(hole(taken)).isEqualTo(0x200000L);
    }

    @Test
    void unsortedAndOverlappingRanges() {
        List<long[]> taken = List.of(r(0x180000, 0x250000), r(LOWEST, 0x1c0000), r(0x200000, 0x210000),
                r(0x260000, 0x400000));
        // 0x250000-0x260000 is exactly one trampoline wide
        assertThat(hole(taken)).isEqualTo(0x250000L);
    }

    @Test
    void typicalProcessLayoutWithVsyscallAboveEverything() {
        List<long[]> taken = new ArrayList<>();
        taken.add(r(0xffffffffff600000L, 0xffffffffff601000L)); // [vsyscall], negative as a signed long
        taken.add(r(0x7ffd7295c000L, 0x7ffd7297d000L));          // [stack]
        taken.add(r(0x55bdc5211000L, 0x55bdc5216000L));          // the program
        taken.add(r(0x7a000000L, 0x7a001000L));                  // the restore stub
        assertThat(hole(taken)).isEqualTo(LOWEST);
        taken.add(r(0x0L, 0x7a000000L));                         // everything below the stub taken too
        assertThat(hole(taken)).isEqualTo(0x7a010000L);
    }

    @Test
    void fullAddressSpaceIsRefused() {
        assertThatThrownBy(() -> Trampoline.findHole(List.of(r(0, 0x7ff000000000L - SIZE / 2))))
                .isInstanceOf(InjectionException.class).hasMessageContaining("no room");
    }
}
