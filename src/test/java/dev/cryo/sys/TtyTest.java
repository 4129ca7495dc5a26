package dev.cryo.sys;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** struct termios2 as the kernel lays it out: 44 bytes, c_cc at 17, speeds at 36 and 40. */
class TtyTest {
    @Test
    void termios2LayoutRoundTrips() {
        byte[] raw = new byte[Tty.TERMIOS2_SIZE];
        for (int i = 0; i < raw.length; i++) {
            raw[i] = (byte) (i + 1);
        }
        Tty.Termios t = Tty.Termios.of(raw);
        assertThat(t.iflag()).isEqualTo(0x04030201);
        assertThat(t.lflag()).isEqualTo(0x100f0e0d);
        assertThat(t.line()).isEqualTo((byte) 17);
        assertThat(t.cc(Tty.VINTR)).isEqualTo(18);
        assertThat(t.cc(Tty.VEOL2)).isEqualTo(34);
        assertThat(t.ispeed()).isEqualTo(0x28272625);
        assertThat(t.ospeed()).isEqualTo(0x2c2b2a29);
        assertThat(t.bytes()).isEqualTo(raw);
    }
}
