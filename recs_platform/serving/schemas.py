"""The HTTP contract of the recommendation endpoint.

Request fields are ``Annotated`` types because BentoML builds the request model from the API
method's signature; the constraints live here so the contract is defined in one place.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

INT64_MAX = 2**63 - 1
MAX_K = 100

# Strict so that true, 3.0 or "3" are type errors rather than silently coerced; bounded to int64
# so that an oversized id is a 400, not an overflow inside numpy.
UserId = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX, description="The user to recommend for.")]
TopK = Annotated[int, Field(strict=True, ge=1, le=MAX_K, description=f"How many items to return (1..{MAX_K}).")]


class RecommendedItem(BaseModel):
    item_id: int
    title: str
    score: float


class RecommendResponse(BaseModel):
    request_id: str = Field(description="Also in the serving log, to join feedback to what was served.")
    user_id: int
    model_version: str
    fallback: bool = Field(description="True when the user is unknown and popularity answered.")
    items: list[RecommendedItem]
