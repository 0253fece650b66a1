"""Scratch: build a DuckDB warehouse with raw.events/users/items from MovieLens-100K."""
import sys
from pathlib import Path
import duckdb
import pandas as pd

ML = Path("/work/shared/data/ml-100k")
out = sys.argv[1]
Path(out).unlink(missing_ok=True)
genres = [l.split("|")[0] for l in (ML / "u.genre").read_text(encoding="latin-1").splitlines() if l.strip()]
assert len(genres) == 19
now = pd.Timestamp("2024-01-01")

data = pd.read_csv(ML / "u.data", sep="\t", names=["user_id", "item_id", "value", "ts"])
events = pd.DataFrame({
    "event_id": [f"ml100k-{u}-{i}-{t}" for u, i, t in zip(data.user_id, data.item_id, data.ts)],
    "user_id": data.user_id.astype("int64"), "item_id": data.item_id.astype("int64"),
    "event_type": "rating", "value": data.value.astype("float64"),
    "timestamp": pd.to_datetime(data.ts, unit="s"), "context": None,
    "source_file": "u.data", "ingested_at": now,
})
assert events.event_id.is_unique
# re-land 500 events later to exercise dedup
dup = events.sample(500, random_state=0).assign(source_file="u.data.relanded", ingested_at=now + pd.Timedelta(days=1))
events = pd.concat([events, dup], ignore_index=True)

users = pd.read_csv(ML / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip_code"], dtype={"zip_code": str})
users = users.assign(age=users.age.astype("int32"), source_file="u.user", ingested_at=now)
# an older snapshot that must lose
old = users.head(10).assign(occupation="OLD", ingested_at=now - pd.Timedelta(days=30), source_file="u.user.old")
users = pd.concat([users, old], ignore_index=True)

cols = ["item_id", "title", "release_date", "video_release", "url"] + genres
items = pd.read_csv(ML / "u.item", sep="|", names=cols, encoding="latin-1")
items["genres"] = items[genres].apply(lambda r: "|".join(g for g in genres if r[g] == 1), axis=1)
items["release_date"] = pd.to_datetime(items.release_date, format="%d-%b-%Y").dt.date
items = items[["item_id", "title", "release_date", "genres"]].assign(source_file="u.item", ingested_at=now)

con = duckdb.connect(out)
con.execute("create schema raw")
con.register("e", events); con.register("u", users); con.register("i", items)
con.execute("""create table raw.events as select event_id::varchar event_id, user_id::bigint user_id, item_id::bigint item_id,
  event_type::varchar event_type, value::double value, "timestamp"::timestamp "timestamp", context::varchar context,
  source_file::varchar source_file, ingested_at::timestamp ingested_at from e""")
con.execute("""create table raw.users as select user_id::bigint user_id, age::integer age, gender::varchar gender,
  occupation::varchar occupation, zip_code::varchar zip_code, source_file::varchar source_file, ingested_at::timestamp ingested_at from u""")
con.execute("""create table raw.items as select item_id::bigint item_id, title::varchar title, release_date::date release_date,
  genres::varchar genres, source_file::varchar source_file, ingested_at::timestamp ingested_at from i""")
for t in ["events", "users", "items"]:
    print(t, con.execute(f"select count(*) from raw.{t}").fetchone())
print(con.execute("select count(*) filter (where release_date is null), count(*) filter (where genres='') from raw.items").fetchall())
con.close()
