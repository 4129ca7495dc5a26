package dev.cryo.check;

import java.util.ArrayList;
import java.util.List;

/** Probes, once, every kernel feature Cryo relies on. */
public final class Features {
    private Features() {
    }

    public static List<String> names() {
        return probeAll().stream().map(Feature::name).toList();
    }

    public static List<Feature> probeAll() {
        return new ArrayList<>();
    }
}
