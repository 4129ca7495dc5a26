package dev.cryo.task;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The CPU lists the affinity warning and log name, from sched_getaffinity's 64-bit words. */
class TaskAttributesTest {

    @Test
    void cpuListJoinsRunsAcrossWords() {
        assertThat(TaskAttributes.cpuList(new long[] {0b10})).isEqualTo("1");
        assertThat(TaskAttributes.cpuList(new long[] {0b1011_1101})).isEqualTo("0,2-5,7");
        assertThat(TaskAttributes.cpuList(new long[] {1L << 63, 0b11})).isEqualTo("63-65");
        assertThat(TaskAttributes.cpuList(new long[] {-1L, 0, 1})).isEqualTo("0-63,128");
        assertThat(TaskAttributes.cpuList(new long[0])).isEqualTo("{}");
    }
}
