"""aws-chunked decoding: AWS's published signed example (S3 API reference, "Transferring
payload in multiple chunks"), boto3's unsigned body with a CRC32 trailer, a signed
trailer, and every way a body can be wrong: bad or missing signatures, truncation, wrong
lengths, malformed framing, bytes after the end. Feeding the same body in pieces of any
size must give the same result."""

import hashlib
import io

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from cairn.gateway.s3 import sigv4
from cairn.gateway.s3.checksums import checksum_of
from cairn.gateway.s3.chunked import ChunkedDecoder
from cairn.gateway.s3.errors import S3Error

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]


def aws_context() -> sigv4.SigningContext:
    credential = sigv4.Credential("AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3")
    return sigv4.SigningContext(
        sigv4.signing_key(AWS_SECRET, credential), credential.scope, "20130524T000000Z", SEED
    )


def aws_body(signatures: list[str] = CHUNK_SIGNATURES) -> bytes:
    return (
        b"10000;chunk-signature=" + signatures[0].encode() + b"\r\n" + b"a" * 65536 + b"\r\n"
        b"400;chunk-signature=" + signatures[1].encode() + b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=" + signatures[2].encode() + b"\r\n\r\n"
    )


def decode(decoder: ChunkedDecoder, body: bytes, piece: int) -> bytes:
    out = bytearray()
    for start in range(0, len(body), piece):
        for part in decoder.feed(body[start : start + piece]):
            out += part
    decoder.finish()
    return bytes(out)


@pytest.mark.parametrize("piece", [1, 7, 100, 65536, 1 << 20])
def test_the_aws_signed_example_decodes_in_pieces_of_any_size(piece: int) -> None:
    body = aws_body()
    assert len(body) == 66824  # the example's Content-Length
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), 66560)
    assert decode(decoder, body, piece) == b"a" * 66560


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_wrong_chunk_signature_is_refused(which: int) -> None:
    signatures = list(CHUNK_SIGNATURES)
    signatures[which] = signatures[which][::-1]
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), 66560)
    with pytest.raises(S3Error) as caught:
        decode(decoder, aws_body(signatures), 4096)
    assert caught.value.code == "SignatureDoesNotMatch"


def test_reordered_or_dropped_chunks_break_the_chain() -> None:
    body = (
        b"400;chunk-signature=" + CHUNK_SIGNATURES[1].encode() + b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=" + CHUNK_SIGNATURES[2].encode() + b"\r\n\r\n"
    )
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), None)
    with pytest.raises(S3Error, match="chunk signature"):
        decode(decoder, body, 1000)


def test_a_missing_chunk_signature_in_a_signed_mode_is_refused() -> None:
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), None)
    with pytest.raises(S3Error):
        decoder.feed(b"5\r\nhello\r\n")


@pytest.mark.parametrize("cut", [0, 10, 100, 65600, 66700, 66823])
def test_a_truncated_body_is_incomplete(cut: int) -> None:
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), 66560)
    with pytest.raises(S3Error) as caught:
        decode(decoder, aws_body()[:cut], 1000)
    assert caught.value.code == "IncompleteBody"


def test_decoded_length_must_match() -> None:
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), 66561)
    with pytest.raises(S3Error, match="decoded"):
        decode(decoder, aws_body(), 4096)
    decoder = ChunkedDecoder(sigv4.STREAMING_SIGNED, aws_context(), 1000)
    with pytest.raises(S3Error) as caught:
        decode(decoder, aws_body(), 4096)
    assert caught.value.code == "IncompleteBody"


def boto_unsigned_body(data: bytes, chunk_size: int = 1 << 20) -> bytes:
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data),
        checksum_cls=Crc32Checksum,
        checksum_name="x-amz-checksum-crc32",
        chunk_size=chunk_size,
    )
    return b"".join(wrapper)


@pytest.mark.parametrize("size", [0, 1, 4096, 100_000])
def test_botocores_unsigned_body_with_crc32_trailer(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    decoder = ChunkedDecoder(sigv4.STREAMING_UNSIGNED_TRAILER, None, size, ["x-amz-checksum-crc32"])
    assert decode(decoder, boto_unsigned_body(data, 8192), 3000) == data
    assert decoder.trailers == {"x-amz-checksum-crc32": checksum_of("crc32", data)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nab\r\n0\r\n\r\n", "size line"),
        (b"2\nab\r\n0\r\n\r\n", "CRLF"),
        (b"2\r\nabc\r\n0\r\n\r\n", "longer"),
        (
            b"2\r\nab\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-meta-evil:1\r\n\r\n",
            "not announced",
        ),
        (b"2\r\nab\r\n0\r\n\r\n", "missing"),
        (b"2\r\nab\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\nmore", "after the end"),
        (b"1" * 300, "too long"),
        (b"2;chunk-signature=" + b"0" * 64 + b"\r\nab\r\n0\r\n\r\n", "signatures"),
    ],
)
def test_malformed_unsigned_bodies(body: bytes, message: str) -> None:
    decoder = ChunkedDecoder(sigv4.STREAMING_UNSIGNED_TRAILER, None, None, ["x-amz-checksum-crc32"])
    with pytest.raises(S3Error, match=message) as caught:
        decode(decoder, body, 5)
    assert 400 <= caught.value.status < 500


def test_signed_trailer_mode_checks_the_trailer_signature() -> None:
    context = aws_context()
    data = b"hello world"

    def chunk_signature(previous: str, payload: bytes) -> str:
        text = "\n".join(
            ("AWS4-HMAC-SHA256-PAYLOAD", context.amz_date, context.scope, previous,
             sigv4.EMPTY_SHA256, hashlib.sha256(payload).hexdigest())
        )  # fmt: skip
        return sigv4.sign(context.key, text)

    first = chunk_signature(SEED, data)
    final = chunk_signature(first, b"")
    trailer = f"x-amz-checksum-crc32:{checksum_of('crc32', data)}\n"
    trailer_text = "\n".join(
        ("AWS4-HMAC-SHA256-TRAILER", context.amz_date, context.scope, final,
         hashlib.sha256(trailer.encode()).hexdigest())
    )  # fmt: skip
    trailer_signature = sigv4.sign(context.key, trailer_text)

    def body(signature: str) -> bytes:
        return (
            f"{len(data):x};chunk-signature={first}\r\n".encode()
            + data
            + b"\r\n"
            + f"0;chunk-signature={final}\r\n".encode()
            + trailer.replace("\n", "\r\n").encode()
            + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
        )

    decoder = ChunkedDecoder(
        sigv4.STREAMING_SIGNED_TRAILER, context, len(data), ["x-amz-checksum-crc32"]
    )
    assert decode(decoder, body(trailer_signature), 9) == data
    decoder = ChunkedDecoder(
        sigv4.STREAMING_SIGNED_TRAILER, context, len(data), ["x-amz-checksum-crc32"]
    )
    with pytest.raises(S3Error) as caught:
        decode(decoder, body("f" * 64), 9)
    assert caught.value.code == "SignatureDoesNotMatch"


def test_unsupported_streaming_modes_are_not_implemented() -> None:
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", None, None)
    assert caught.value.code == "NotImplemented"
