-- One row per list computed for a request: the one the user was shown (served_by = 'champion')
-- and any computed in shadow by a challenger for the same request. A list logged twice (a
-- re-landed log file) keeps its earliest load.

with

source as (

    select * from {{ source('raw', 'served_impressions') }}

),

renamed as (

    select
        request_id,
        served_by,
        served_by = 'champion' as shown,
        served_at,
        user_id,
        k,
        model_version,
        source as answer_source,
        path as answer_path,
        history_source,
        coalesce({{ list_length('history_items') }}, 0) as history_length,
        user_features,
        item_ids,
        scores,
        latency_ms,
        online_version,
        source_file,
        ingested_at

    from source

),

deduplicated as (

    select *
    from renamed
    {{ keep_one_load('request_id, served_by', 'earliest') }}

)

select * from deduplicated
