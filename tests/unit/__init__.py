"""Unit tests of the pure protocol core: spec vectors, rules and hypothesis properties."""
