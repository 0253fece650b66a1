-- Implicit feedback: one row per (user_id, item_id) with at least one positive event,
-- restricted to users and items present in the catalogs.
--
-- Incremental (delete+insert on user_id, item_id). The watermark is max(last_ingested_at) of
-- this table. A run recomputes, from all of their events, only the pairs that
--   * have a positive event loaded after the watermark (new pairs and pairs with new events), or
--   * belong to a catalog user or item that has no row here yet (its events were dropped by the
--     catalog join before the catalog entry arrived).
-- Every other pair is left untouched. `dbt build --full-refresh` rebuilds all pairs.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['user_id', 'item_id'],
        on_schema_change='fail'
    )
}}

with

events as (

    select * from {{ ref('stg_events') }}

),

users as (

    select user_id from {{ ref('stg_users') }}

),

items as (

    select item_id from {{ ref('stg_items') }}

),

positive_events as (

    select
        events.event_id,
        events.user_id,
        events.item_id,
        events.value,
        events.event_ts,
        events.ingested_at

    from events
    inner join users on events.user_id = users.user_id
    inner join items on events.item_id = items.item_id

    where {{ is_positive_event('events') }}

),

{% if is_incremental() %}

watermark as (

    select coalesce(max(last_ingested_at), '-infinity'::timestamp) as last_ingested_at
    from {{ this }}

),

new_catalog_users as (

    select user_id from users
    except
    select user_id from {{ this }}

),

new_catalog_items as (

    select item_id from items
    except
    select item_id from {{ this }}

),

-- Read from stg_events directly so the load-time filter prunes the scan; the catalog joins are
-- applied once, in positive_events below.
changed_pairs as (

    select user_id, item_id
    from events
    where events.ingested_at > (select last_ingested_at from watermark)
      and {{ is_positive_event('events') }}

    union

    select user_id, item_id
    from events
    {{ semi_join('new_catalog_users', ['user_id']) }}
    where {{ is_positive_event('events') }}

    union

    select user_id, item_id
    from events
    {{ semi_join('new_catalog_items', ['item_id']) }}
    where {{ is_positive_event('events') }}

),

selected_events as (

    select positive_events.*
    from positive_events
    {{ semi_join('changed_pairs', ['user_id', 'item_id']) }}

),

{% else %}

selected_events as (

    select * from positive_events

),

{% endif %}

ranked as (

    select
        *,
        row_number() over (
            partition by user_id, item_id
            order by event_ts desc, event_id desc
        ) as recency_rank

    from selected_events

),

final as (

    select
        user_id,
        item_id,
        min(event_ts) as first_interaction_at,
        max(event_ts) as last_interaction_at,
        count(*) as n_events,
        max(case when recency_rank = 1 then value end) as last_value,
        max(ingested_at) as last_ingested_at,
        '{{ invocation_id }}'::varchar as dbt_invocation_id

    from ranked
    group by user_id, item_id

)

select * from final
