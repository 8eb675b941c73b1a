"""The S3 API of the gateway (issue 7): SigV4, aws-chunked bodies, buckets, objects, listing.

Modules, from pure parsing up to IO: `errors` (codes and statuses), `sigv4` (signatures),
`chunked` (aws-chunked framing), `checksums` (upload digests), `conditions` (If-*),
`headers` (object attributes), `endpoint` (request -> operation), `xml` (documents);
then `auth` (users and the key cache), `body` (a verified upload stream), `context`
(what handlers get, bucket ownership), the handlers `buckets`, `objects`, `listing`, and
`app`, which routes and answers errors. See docs/design/s3.md.
"""

from cairn.gateway.s3.app import HANDLERS, S3App
from cairn.gateway.s3.endpoint import Op

__all__ = ["HANDLERS", "Op", "S3App"]
