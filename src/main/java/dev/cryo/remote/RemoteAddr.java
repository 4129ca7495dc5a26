package dev.cryo.remote;

/** An address in a tracee's address space; never to be dereferenced locally. */
public record RemoteAddr(long value) {
    public static final RemoteAddr NULL = new RemoteAddr(0);

    public RemoteAddr plus(long offset) {
        return new RemoteAddr(value + offset);
    }

    @Override
    public String toString() {
        return "0x" + Long.toHexString(value);
    }
}
