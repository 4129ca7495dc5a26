package dev.cryo;

/** Cryo's version, recorded in every image. */
public final class Version {
    public static final String VERSION = "0.1.0";

    private Version() {
    }
}
