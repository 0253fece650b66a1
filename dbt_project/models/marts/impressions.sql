-- One row per served item: what each request showed, at which position (1 = first).

with

requests as (

    select * from {{ ref('stg_serving_requests') }}

),

unnested as (

    select
        request_id,
        served_at,
        user_id,
        model_version,
        answer_source,
        unnest(generate_series(1, len(item_ids))) as position,
        unnest(item_ids) as item_id,
        unnest(scores) as score

    from requests

)

select * from unnested
