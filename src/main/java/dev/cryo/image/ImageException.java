package dev.cryo.image;

import dev.cryo.CryoException;

/** An image that cannot be used: damaged, truncated, foreign, or of another version. */
public class ImageException extends CryoException {
    public ImageException(String message) {
        super(message);
    }

    public ImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
