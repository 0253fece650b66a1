"""The HTTP contract of the recommendation endpoint.

Request fields are ``Annotated`` types because BentoML builds the request model from the API
method's signature; the constraints live here so the contract is defined in one place. Ids and
user features follow the served home's dataset contract, read once when the server starts: a
string-id dataset takes and returns string ids, and a wrong type is a 400 that names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from recs_platform.data.contract import MAX_STRING_ID, DatasetContract, contract_for_home
from recs_platform.data.serving_log import HISTORY_SOURCES, SOURCES
from recs_platform.settings import PlatformPaths

INT64_MAX = 2**63 - 1
MAX_K = 100
MAX_RECENT_ITEMS = 200


def id_annotation(id_type: str, description: str | None = None) -> Any:
    """The request type of one id. Strict, so that true, 3.0 or "3" are type errors rather than
    silently coerced; integers bounded to int64 so an oversized id is a 400, not an overflow inside
    numpy; strings bounded as ingestion bounds them."""
    if id_type == "string":
        return Annotated[str, Field(strict=True, min_length=1, max_length=MAX_STRING_ID, description=description)]
    return Annotated[int, Field(strict=True, ge=0, le=INT64_MAX, description=description)]


def user_features_model(contract: DatasetContract) -> type[BaseModel]:
    """Segment attributes of a user the model may not know, as the contract names them; unknown
    fields are refused."""
    fields = {
        name: (str | None, Field(None, max_length=64, description="As in the user features table."))
        for name in contract.user_segment_columns
    }
    config = ConfigDict(extra="forbid", strict=True)
    return create_model("UserFeatures", __config__=config, __doc__=user_features_model.__doc__, **fields)


SERVED_CONTRACT = contract_for_home(PlatformPaths.from_env().home)
Id = id_annotation(SERVED_CONTRACT.item_id_type)
UserId = id_annotation(SERVED_CONTRACT.user_id_type, "The user to recommend for.")
ItemIdValue = str if SERVED_CONTRACT.item_id_type == "string" else int
UserIdValue = str if SERVED_CONTRACT.user_id_type == "string" else int
UserFeatures = user_features_model(SERVED_CONTRACT)
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


class RecommendedItem(BaseModel):
    item_id: ItemIdValue
    title: str
    score: float


class RecommendResponse(BaseModel):
    request_id: str = Field(description="Also in the serving log, to join feedback to what was served.")
    user_id: UserIdValue
    model_version: str
    source: str = Field(description=f"What answered: one of {', '.join(SOURCES)}.")
    history_source: str = Field(description=f"Where the history came from: one of {', '.join(HISTORY_SOURCES)}.")
    items: list[RecommendedItem]
