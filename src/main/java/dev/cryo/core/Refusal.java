package dev.cryo.core;

import dev.cryo.CryoException;

/** Cryo cannot save this task faithfully, so it will not save it at all. The target keeps running. */
public class Refusal extends CryoException {
    public Refusal(String message) {
        super(message);
    }
}
