"""The Amazon Web Services fakes: SES (v2 JSON and v1 Query) and SNS (Query), with what they share:
SigV4 parsing (`sigv4`) and the Query protocol (`query`)."""

from mockhub.services.aws.ses import SesService
from mockhub.services.aws.sns import SnsService

__all__ = ["SesService", "SnsService"]
