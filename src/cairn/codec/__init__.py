"""Encoding of one chunk: content-defined chunking, keyed hashing, compression, encryption."""
