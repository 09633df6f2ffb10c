"""Decoding one sequence, whatever engine runs the model: logits sampling, incremental
detokenization, stop strings, request limits, admission, and the per-sequence state that ties
them together. Imports torch (through `sampling`), so only generation engines import it."""
