package dev.cryo.task;

import java.util.ArrayList;
import java.util.List;

/** Capability names, for messages (linux/capability.h's numbering). */
final class Capabilities {
    private static final String[] NAMES = {"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
            "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock",
            "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot",
            "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
            "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
            "checkpoint_restore"};

    private Capabilities() {
    }

    /** "CAP_SYS_NICE, CAP_NET_ADMIN" for a capability mask; a number the table does not know is named by it. */
    static String names(long mask) {
        List<String> out = new ArrayList<>();
        for (int cap = 0; cap < 64; cap++) {
            if ((mask & (1L << cap)) != 0) {
                out.add(cap < NAMES.length ? "CAP_" + NAMES[cap].toUpperCase(java.util.Locale.ROOT) : "capability " + cap);
            }
        }
        return String.join(", ", out);
    }
}
