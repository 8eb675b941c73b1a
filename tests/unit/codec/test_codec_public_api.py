import cairn.codec


def test_public_names_are_pinned() -> None:
    assert cairn.codec.__all__ == [
        "CHUNK_ID_SIZE_BYTES",
        "ByteSource",
        "Chunk",
        "ChunkCodec",
        "ChunkCorrupt",
        "ChunkId",
        "Chunker",
        "ChunkingParams",
        "CodecError",
        "CodecKeys",
        "CodecPolicy",
        "DedupStats",
        "EncodedChunk",
        "InvalidChunkId",
        "PipelineChunk",
        "WritePipeline",
    ]
    for name in cairn.codec.__all__:
        assert hasattr(cairn.codec, name)
