"""The HTTP contract of the recommendation endpoint.

Request fields are ``Annotated`` types because BentoML builds the request model from the API
method's signature; the constraints live here so the contract is defined in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from recs_platform.data.serving_log import HISTORY_SOURCES, SOURCES

INT64_MAX = 2**63 - 1
MAX_K = 100
MAX_RECENT_ITEMS = 200

# Strict so that true, 3.0 or "3" are type errors rather than silently coerced; bounded to int64
# so that an oversized id is a 400, not an overflow inside numpy.
Id = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
UserId = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX, description="The user to recommend for.")]
TopK = Annotated[int, Field(strict=True, ge=1, le=MAX_K, description=f"How many items to return (1..{MAX_K}).")]
RecentItems = Annotated[
    list[Id] | None,
    Field(
        max_length=MAX_RECENT_ITEMS,
        description="Items the client knows the user interacted with, most recent last; added to the "
        "user's stored history for this answer.",
    ),
]
# Strict: otherwise pydantic reads a number as Unix seconds, and the published schema says a string.
RequestTime = Annotated[
    datetime | None,
    Field(strict=True, description="When the request happens; defaults to the server's clock. Replays and simulations "
          "pass the original time so feedback is attributed on the data's own clock."),
]  # fmt: skip


class UserFeatures(BaseModel):
    """Demographics of a user the model may not know; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    age_bucket: str | None = Field(None, max_length=32, description="'<18', '18-24', ..., '55+'.")
    gender: str | None = Field(None, max_length=32, description="As in the user catalog (MovieLens: M/F).")
    occupation: str | None = Field(None, max_length=64, description="As in the user catalog.")


class RecommendedItem(BaseModel):
    item_id: int
    title: str
    score: float


class RecommendResponse(BaseModel):
    request_id: str = Field(description="Also in the serving log, to join feedback to what was served.")
    user_id: int
    model_version: str
    source: str = Field(description=f"What answered: one of {', '.join(SOURCES)}.")
    history_source: str = Field(description=f"Where the history came from: one of {', '.join(HISTORY_SOURCES)}.")
    items: list[RecommendedItem]
