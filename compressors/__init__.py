"""Built-in compressor plugins, registered through the `bench.compressors` entry point group."""
