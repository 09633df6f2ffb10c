"""Engine-independent generation pieces: sampling, incremental detokenization, stop strings,
and the per-sequence state that ties them together. Imports torch (through `sampling`), so
only generative backends import it."""
