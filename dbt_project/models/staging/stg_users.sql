-- One row per user: the latest ingested snapshot wins.

with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        user_id,
        age,
        gender,
        occupation,
        zip_code,
        source_file,
        ingested_at

    from source

),

latest as (

    select *
    from renamed
    {{ keep_one_load('user_id', 'latest') }}

)

select * from latest
