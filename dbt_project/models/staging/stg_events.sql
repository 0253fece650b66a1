-- One row per event: re-landed copies of an event_id are dropped, keeping the earliest load.
--
-- Incremental on the load watermark (max ingested_at already in this table). A run reads only
-- the raw rows loaded after it, and recomputes just the event_ids those rows carry, from all of
-- their raw copies, so the earliest-load rule holds across batches: a re-landed copy leaves the
-- kept row as it was, a re-ingested (changed) file's new copy replaces the deleted old one.
-- `dbt build --full-refresh` rebuilds the table from all of raw.events.

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='fail'
    )
}}

with

{% if is_incremental() %}

changed_event_ids as (

    select distinct event_id
    from {{ source('raw', 'events') }}
    where ingested_at > (
        select coalesce(max(ingested_at), '-infinity'::timestamp) from {{ this }}
    )

),

source as (

    select raw_events.*
    from {{ source('raw', 'events') }} as raw_events
    {{ semi_join('changed_event_ids', ['event_id']) }}

),

{% else %}

source as (

    select * from {{ source('raw', 'events') }}

),

{% endif %}

renamed as (

    select
        event_id,
        user_id,
        item_id,
        event_type,
        value,
        "timestamp" as event_ts,
        context,
        source_file,
        ingested_at

    from source

),

deduplicated as (

    select *
    from renamed
    {{ keep_one_load('event_id', 'earliest') }}

),

final as (

    select
        *,
        '{{ invocation_id }}'::varchar as dbt_invocation_id

    from deduplicated

)

select * from final
