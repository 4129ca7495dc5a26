package dev.cryo.ns;

import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.charset.StandardCharsets;

/**
 * A UTS namespace's state: its host and domain names. Read by an injected uname(2) in a task of
 * the namespace (Cryo's own /proc/sys/kernel/hostname would show its own namespace's), set by
 * injected sethostname(2)/setdomainname(2).
 * <pre>
 * struct utsname: six char[65]: sysname 0, nodename 65, release 130, version 195, machine 260, domainname 325
 * </pre>
 */
public final class Uts {
    private static final int FIELD = 65, NODENAME = 65, DOMAINNAME = 325, SIZE = 6 * FIELD;

    /** Host and domain name of one UTS namespace. */
    public record Names(String hostname, String domainname) {
    }

    private Uts() {
    }

    public static Names read(RemoteSyscalls sys) {
        RemoteAddr buf = sys.scratch().alloc(SIZE);
        try {
            sys.call("uname", Nr.UNAME, buf.value());
            byte[] u = sys.scratch().read(buf, SIZE);
            return new Names(cString(u, NODENAME), cString(u, DOMAINNAME));
        } finally {
            sys.scratch().reset();
        }
    }

    /** Sets both names; a null one is left as the namespace has it (a new namespace starts with its parent's). */
    public static void apply(RemoteSyscalls sys, Names names) {
        if (names.hostname() != null) {
            set(sys, "sethostname", Nr.SETHOSTNAME, names.hostname());
        }
        if (names.domainname() != null) {
            set(sys, "setdomainname", Nr.SETDOMAINNAME, names.domainname());
        }
    }

    private static void set(RemoteSyscalls sys, String call, int nr, String value) {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        if (bytes.length >= FIELD) {
            throw new dev.cryo.CryoException(call + ": '" + value + "' is longer than " + (FIELD - 1) + " bytes");
        }
        RemoteAddr at = sys.scratch().putString(value);
        try {
            sys.call(call + "(" + value + ")", nr, at.value(), bytes.length);
        } finally {
            sys.scratch().reset();
        }
    }

    private static String cString(byte[] b, int offset) {
        int end = offset;
        while (end < offset + FIELD && b[end] != 0) {
            end++;
        }
        return new String(b, offset, end - offset, StandardCharsets.UTF_8);
    }
}
