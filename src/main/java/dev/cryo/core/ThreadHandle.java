package dev.cryo.core;

import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;

/** One thread of the process being dumped or restored, held stopped, with a syscall session inside it. */
public record ThreadHandle(int tid, Tracee task, RemoteSyscalls syscalls) {
}
