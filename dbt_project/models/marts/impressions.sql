-- One row per item of every list computed for a request, at its position (1 = first): the list
-- the user was shown (shown = true) and the lists challengers computed in shadow.

with

requests as (

    select * from {{ ref('stg_serving_requests') }}

),

unnested as (

    select
        request_id,
        served_by,
        shown,
        served_at,
        user_id,
        model_version,
        answer_source,
        {{ list_positions('item_ids') }} as position,
        unnest(item_ids) as item_id,
        unnest(scores) as score

    from requests

)

select * from unnested
