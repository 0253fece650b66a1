-- One row per event: re-landed copies of an event_id are dropped, keeping the earliest load.

with

source as (

    select * from {{ source('raw', 'events') }}

),

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
    qualify row_number() over (
        partition by event_id
        order by ingested_at asc, source_file asc
    ) = 1

)

select * from deduplicated
