"""The API function: `POST /orders` enqueues a receipt now and a review request in 3 days."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import timedelta

import msgspec

from glasswork import JobService
from sam_shop.jobs import Receipt, ask_for_review_job, send_receipt_job
from sam_shop.settings import api_driver

REVIEW_DELAY = timedelta(days=3)


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """The request body of `POST /orders`."""

    order_id: int
    email: str


_decoder = msgspec.json.Decoder(Order)
_encoder = msgspec.json.Encoder()
service = JobService(api_driver())


def _response(status: int, body: object) -> dict[str, object]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": _encoder.encode(body).decode(),
    }


def handler(event: Mapping[str, object], context: object) -> dict[str, object]:
    """Handle an API Gateway HTTP API (payload format 2.0) request.

    Returns:
        202 with the receipt's job id and the review's schedule name, or 400
        for a body that is not an order. A failed enqueue raises (500).
    """
    body = event.get("body") or ""
    if not isinstance(body, str):
        return _response(400, {"error": "expected a JSON body"})
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        order = _decoder.decode(raw)
    except (binascii.Error, msgspec.DecodeError) as exc:
        return _response(400, {"error": f"not an order: {exc}"})
    receipt = Receipt(order_id=order.order_id, email=order.email)
    sent = service.enqueue(send_receipt_job, receipt)
    review = service.enqueue_in(ask_for_review_job, receipt, REVIEW_DELAY)
    return _response(202, {"receiptJobId": sent.job_id, "reviewSchedule": review.message_id})
