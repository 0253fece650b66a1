-- One row per user: the latest ingested snapshot wins, with the columns the dataset contract
-- declares. Without a user catalogue, the users are those events mention, with no attributes:
-- their features then come from events alone (user_features).
-- depends_on: {{ ref('stg_events') }}

with

{% if var('contract')['has_users'] %}

source as (

    select * from {{ source('raw', 'users') }}

),

{% else %}

source as (

    select user_id, min(source_file) as source_file, min(ingested_at) as ingested_at
    from {{ ref('stg_events') }}
    group by user_id

),

{% endif %}

renamed as (

    select
        user_id,
        {{- contract_staging_columns('users') }}
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
