"""The S3 API and admin API over HTTP; object read and write pipelines."""
