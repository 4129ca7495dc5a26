package dev.cryo.task;

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

    /**
     * The schema's fields carry the kernel's names in the kernel's order, field i+1 holding
     * register i (CpuTest checks it), so the mapping goes by field number. Through the wire
     * format rather than protobuf's reflection, whose first use builds accessor tables for the
     * whole message type: tens of milliseconds in a fresh JVM, spent while the process is frozen.
     */
    static X86Regs toImage(Regs regs) {
        byte[] buf = new byte[Regs.NAMES.size() * 11];
        com.google.protobuf.CodedOutputStream out = com.google.protobuf.CodedOutputStream.newInstance(buf);
        try {
            for (int i = 0; i < Regs.NAMES.size(); i++) {
                out.writeUInt64(i + 1, regs.get(i));
            }
            return X86Regs.parseFrom(com.google.protobuf.ByteString.copyFrom(buf, 0, out.getTotalBytesWritten()));
        } catch (java.io.IOException e) {
            throw new IllegalStateException("encoding registers", e);
        }
    }

    static Regs fromImage(X86Regs image) {
        long[] values = new long[Regs.NAMES.size()];
        com.google.protobuf.CodedInputStream in = image.toByteString().newCodedInput();
        try {
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int field = com.google.protobuf.WireFormat.getTagFieldNumber(tag);
                if (field >= 1 && field <= values.length) {
                    values[field - 1] = in.readUInt64();
                } else {
                    in.skipField(tag);
                }
            }
        } catch (java.io.IOException e) {
            throw new IllegalStateException("decoding registers", e);
        }
        return new Regs(values);
    }

    /** The xsave features (XCR0) the area's owner could use, as the kernel records them for ptrace. */
    static long xfeatures(byte[] xstate) {
        return xstate.length < XCR0_OFFSET + 8 ? 0
                : ByteBuffer.wrap(xstate).order(ByteOrder.LITTLE_ENDIAN).getLong(XCR0_OFFSET);
    }
}
