package dev.cryo.task;

import com.google.protobuf.Descriptors.FieldDescriptor;
import dev.cryo.image.proto.X86Regs;
import dev.cryo.sys.Regs;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Registers between their kernel form ({@link Regs}, xsave bytes) and the image. */
final class Cpu {
    /** For ptrace the kernel puts XCR0 in the first word of the software-reserved bytes (xstate_fx_sw_bytes). */
    private static final int XCR0_OFFSET = 464;

    private Cpu() {
    }

    /** The schema's fields carry the kernel's names, so the mapping is by name, not by hand. */
    static X86Regs toImage(Regs regs) {
        X86Regs.Builder b = X86Regs.newBuilder();
        for (int i = 0; i < Regs.NAMES.size(); i++) {
            FieldDescriptor f = X86Regs.getDescriptor().findFieldByName(Regs.NAMES.get(i));
            b.setField(f, regs.get(i));
        }
        return b.build();
    }

    static Regs fromImage(X86Regs image) {
        long[] values = new long[Regs.NAMES.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = (Long) image.getField(X86Regs.getDescriptor().findFieldByName(Regs.NAMES.get(i)));
        }
        return new Regs(values);
    }

    /** The xsave features (XCR0) the area's owner could use, as the kernel records them for ptrace. */
    static long xfeatures(byte[] xstate) {
        return xstate.length < XCR0_OFFSET + 8 ? 0
                : ByteBuffer.wrap(xstate).order(ByteOrder.LITTLE_ENDIAN).getLong(XCR0_OFFSET);
    }
}
