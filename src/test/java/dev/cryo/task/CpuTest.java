package dev.cryo.task;

import com.google.protobuf.Descriptors.FieldDescriptor;
import dev.cryo.image.proto.X86Regs;
import dev.cryo.sys.Regs;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** Registers between the kernel's user_regs_struct ({@link Regs}) and the image schema ({@link X86Regs}). */
class CpuTest {

    /** Distinct values in every field, including all-ones and values with the top bit set (uint64 in the schema). */
    private static Regs sample() {
        long[] v = new long[Regs.NAMES.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = 0x1111_0000_0000_0000L * (i % 15 + 1) + i;
        }
        v[Regs.NAMES.indexOf("rax")] = -516;  // -ERESTART_RESTARTBLOCK, as a task stopped in a syscall has it
        v[Regs.NAMES.indexOf("orig_rax")] = -1;
        v[Regs.NAMES.indexOf("rip")] = 0x7fa9_942e_2abcL;
        v[Regs.NAMES.indexOf("rsp")] = 0x7ffd_7297_cff0L;
        v[Regs.NAMES.indexOf("cs")] = 0x33;
        v[Regs.NAMES.indexOf("ss")] = 0x2b;
        return new Regs(v);
    }

    @Test
    void schemaHasTheKernelsFieldsInTheKernelsOrder() {
        List<FieldDescriptor> fields = X86Regs.getDescriptor().getFields();
        assertThat(fields).extracting(FieldDescriptor::getName).containsExactlyElementsOf(Regs.NAMES);
        for (int i = 0; i < fields.size(); i++) {
            assertThat(fields.get(i).getNumber()).as(fields.get(i).getName()).isEqualTo(i + 1);
            assertThat(fields.get(i).getType()).isEqualTo(FieldDescriptor.Type.UINT64);
        }
    }

    @Test
    void roundTripKeepsEveryRegister() {
        Regs regs = sample();
        Regs back = Cpu.fromImage(Cpu.toImage(regs));
        assertThat(back).isEqualTo(regs);
        assertThat(back.values()).containsExactly(regs.values());
    }

    @Test
    void roundTripThroughTheSerializedMessage() throws Exception {
        Regs regs = sample();
        X86Regs parsed = X86Regs.parseFrom(Cpu.toImage(regs).toByteArray());
        assertThat(Cpu.fromImage(parsed)).isEqualTo(regs);
    }

    @Test
    void eachRegisterLandsInTheFieldOfItsName() {
        Regs regs = sample();
        X86Regs image = Cpu.toImage(regs);
        assertThat(image.getRip()).isEqualTo(regs.rip());
        assertThat(image.getRsp()).isEqualTo(regs.rsp());
        assertThat(image.getRax()).isEqualTo(-516);
        assertThat(image.getOrigRax()).isEqualTo(-1);
        assertThat(image.getCs()).isEqualTo(0x33);
        assertThat(image.getSs()).isEqualTo(0x2b);
        assertThat(image.getR15()).isEqualTo(regs.get(0));
        assertThat(image.getGs()).isEqualTo(regs.get(26));
        assertThat(image.getFsBase()).isEqualTo(regs.get(Regs.NAMES.indexOf("fs_base")));
    }

    @Test
    void zeroRegistersRoundTripFromAnEmptyMessage() {
        assertThat(Cpu.fromImage(X86Regs.getDefaultInstance())).isEqualTo(new Regs(new long[27]));
    }

    @Test
    void xfeaturesAreReadFromTheSoftwareReservedBytes() {
        byte[] xstate = new byte[2432];
        ByteBuffer.wrap(xstate).order(ByteOrder.LITTLE_ENDIAN).putLong(464, 0xe7L);
        assertThat(Cpu.xfeatures(xstate)).isEqualTo(0xe7L);
        assertThat(Cpu.xfeatures(new byte[471])).as("too short to hold XCR0").isZero();
        assertThat(Cpu.xfeatures(new byte[0])).isZero();
    }
}
