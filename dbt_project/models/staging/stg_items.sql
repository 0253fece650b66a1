-- One row per item: the latest ingested snapshot wins. Columns come from the dataset contract:
-- `title` (the contract's title column, else the id as text), every declared attribute,
-- multi-valued ones also as `<name>_list`, and `release_year` from the contract's item date
-- column when it has one. Without an item catalogue, the items are those events mention.
-- depends_on: {{ ref('stg_events') }}

{%- set contract = var('contract') %}
{%- set title = contract['title_column'] %}
{%- set date_column = contract['item_date_column'] %}

with

{% if contract['has_items'] %}

source as (

    select * from {{ source('raw', 'items') }}

),

{% else %}

source as (

    select item_id, min(source_file) as source_file, min(ingested_at) as ingested_at
    from {{ ref('stg_events') }}
    group by item_id

),

{% endif %}

renamed as (

    select
        item_id,
        {% if title %}coalesce({{ title }}::varchar, item_id::varchar){% else %}item_id::varchar{% endif %} as title,
        {{- contract_staging_columns('items') }}
        {%- if date_column %}
        {{ year_of(date_column) }} as release_year,
        {%- endif %}
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
