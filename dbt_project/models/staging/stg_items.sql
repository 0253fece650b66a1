-- One row per item: the latest ingested snapshot wins; genres are also exposed as a list.

with

source as (

    select * from {{ source('raw', 'items') }}

),

renamed as (

    select
        item_id,
        title,
        release_date,
        coalesce(genres, '') as genres,
        list_filter(
            string_split(coalesce(genres, ''), '|'),
            lambda g: g <> ''
        )::varchar[] as genre_list,
        year(release_date) as release_year,
        source_file,
        ingested_at

    from source

),

latest as (

    select *
    from renamed
    {{ keep_one_load('item_id', 'latest') }}

)

select * from latest
