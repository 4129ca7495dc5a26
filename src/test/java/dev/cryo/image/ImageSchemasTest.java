package dev.cryo.image;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** Every .proto file of the image is prepared before a freeze: a new one must join ImageWriter.SCHEMAS. */
class ImageSchemasTest {

    @Test
    void everyProtoFileIsPreparedBeforeAFreeze() throws IOException {
        try (Stream<Path> protos = Files.list(Path.of("src/main/proto"))) {
            assertThat(ImageWriter.SCHEMAS.stream().map(c -> c.getSimpleName().replace("OuterClass", "").toLowerCase()))
                    .containsExactlyInAnyOrderElementsOf(protos.map(p -> p.getFileName().toString().replace(".proto", "")).toList());
        }
        ImageWriter.prepareSchemas();
    }
}
