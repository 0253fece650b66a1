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
        {{ split_nonempty("coalesce(genres, '')", '|') }}::varchar[] as genre_list,
        {{ year_of('release_date') }} as release_year,
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
