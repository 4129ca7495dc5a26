package dev.cryo.remote;

import java.nio.charset.StandardCharsets;

/**
 * A bump allocator over a writable region inside the tracee, for the arguments of injected calls
 * (paths, structs, result buffers). {@link #reset()} between calls reuses the space.
 */
public final class RemoteScratch {
    private final Tracee task;
    private final RemoteAddr base;
    private final long size;
    private long used;

    public RemoteScratch(Tracee task, RemoteAddr base, long size) {
        this.task = task;
        this.base = base;
        this.size = size;
    }

    public RemoteAddr base() {
        return base;
    }

    public long size() {
        return size;
    }

    /** Reserves {@code n} bytes, 16-byte aligned. */
    public RemoteAddr alloc(long n) {
        long start = (used + 15) & ~15L;
        if (start + n > size) {
            throw new InjectionException("scratch memory in task " + task.pid() + " exhausted (" + size + " bytes)");
        }
        used = start + n;
        return base.plus(start);
    }

    public RemoteAddr put(byte[] data) {
        RemoteAddr at = alloc(data.length);
        task.write(at, data);
        return at;
    }

    /** A NUL-terminated copy of {@code s}. */
    public RemoteAddr putString(String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        byte[] z = new byte[bytes.length + 1];
        System.arraycopy(bytes, 0, z, 0, bytes.length);
        return put(z);
    }

    public byte[] read(RemoteAddr at, int length) {
        return task.read(at, length);
    }

    public void reset() {
        used = 0;
    }

    /** How much is allocated: {@link #resetTo} frees what was allocated after this, keeping what was before. */
    public long mark() {
        return used;
    }

    public void resetTo(long mark) {
        used = mark;
    }
}
