package dev.cryo.remote;

import dev.cryo.CryoException;

/** Driving the tracee failed (an unexpected stop, a ptrace error) — as opposed to the injected call being refused. */
public class InjectionException extends CryoException {
    public InjectionException(String message) {
        super(message);
    }

    public InjectionException(String message, Throwable cause) {
        super(message, cause);
    }
}
