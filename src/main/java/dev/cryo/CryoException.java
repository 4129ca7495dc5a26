package dev.cryo;

/** The one unchecked root of everything Cryo reports as a failure; the CLI maps it to one line. */
public class CryoException extends RuntimeException {
    public CryoException(String message) {
        super(message);
    }

    public CryoException(String message, Throwable cause) {
        super(message, cause);
    }
}
