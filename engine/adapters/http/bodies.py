"""What comes in and goes out as JSON: the request bodies, the report's query, and the fast
encoder of the hot endpoints' answers."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.adapters.http.problems import InvalidRequest, first_error

B = TypeVar("B", bound=BaseModel)


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    journey: str | None = Field(None, description="A journey id (or give a motive).")
    motive: str | None = Field(None, description="A motive id of the catalogue.")
    channel: str | None = Field(None, max_length=40)
    inputs: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(None, max_length=10)
    customer_id: str | None = Field(None, max_length=200)
    identity: str | None = Field(
        None,
        max_length=8000,
        description="Self-care: the signed identity (a JWT) the company's site hands over "
        "for its logged-in customer; the customer number is then its own.",
    )


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str = Field(..., max_length=400)
    value: Any = None
    seq: int | None = None


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(..., max_length=200, description="An event type, e.g. order.delayed.")
    data: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(None, max_length=10)


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str | None = Field(None, max_length=40)


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HandOffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="The queue that finishes the contact (default: backoffice).",
    )


def parse_body(model: type[B], raw: bytes) -> B:
    """The body of a hot endpoint, read by pydantic straight from its bytes (one pass in
    Rust, where FastAPI's body dependency decodes the JSON in Python, then validates)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise InvalidRequest(first_error(err.errors())) from None


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of a body that an endpoint parses itself (parse_body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class Health(BaseModel):
    status: Literal["ok"] = Field(description="The API answers.")
    backoffice: Literal["ready", "starting", "down"] = Field(
        description="The back office that runs the actions: ready; starting (an action asked "
        "for now is answered 503 with Retry-After); or down (the next action starts it again)."
    )


class ReportQuery:
    """The filters of a report, as query parameters (the options of `journeys report`)."""

    def __init__(
        self,
        since: str | None = None,
        until: str | None = None,
        motive: str | None = None,
        journey: str | None = None,
        window: int = Query(7, ge=0, le=365),
        idle: int = Query(30, ge=0, le=525_600),
    ) -> None:
        self.since, self.until, self.motive, self.journey = since, until, motive, journey
        self.window, self.idle = window, idle


class FastJSON(Response):
    """JSON encoded by orjson (as Starlette's JSONResponse writes it: UTF-8, compact), in a
    tenth of the time of the standard library's encoder."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
