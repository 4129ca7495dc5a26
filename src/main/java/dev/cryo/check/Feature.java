package dev.cryo.check;

/**
 * One probed kernel feature.
 *
 * @param required checkpoint/restore of a plain process cannot work without it
 * @param detail   what the probe saw (an errno, a version), for the user
 */
public record Feature(String name, boolean available, boolean required, String detail) {
}
