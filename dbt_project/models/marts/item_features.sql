-- One row per catalog item with the contract's attributes and popularity features; item age
-- only when the contract declares an item date. Items without interactions are kept with
-- n_interactions = 0.

{%- set date_column = var('contract')['item_date_column'] %}
{%- set attributes = [] %}
{%- for column in contract_columns('items') %}
    {%- do attributes.append(column.name) %}
    {%- if column.kind == 'multi' %}{% do attributes.append(column.name ~ '_list') %}{% endif %}
{%- endfor %}
{%- if date_column %}{% do attributes.extend(['release_year', 'item_age_days']) %}{% endif %}

with

items as (

    select * from {{ ref('stg_items') }}

),

interactions as (

    select * from {{ ref('interactions') }}

),

reference_time as (

    select max(last_interaction_at) as max_event_ts from interactions

),

item_activity as (

    select
        item_id,
        count(*) as n_interactions,
        count(distinct user_id) as n_users,
        min(first_interaction_at) as first_interaction_at

    from interactions
    group by item_id

),

joined as (

    select
        items.item_id,
        items.title,
        {%- for column in contract_columns('items') %}
        items.{{ column.name }},
        {%- if column.kind == 'multi' %}
        items.{{ column.name }}_list,
        {%- endif %}
        {%- endfor %}
        {%- if date_column %}
        items.release_year,
        {{ dbt.datediff('items.' ~ date_column ~ '::date', 'reference_time.max_event_ts::date', 'day') }} as item_age_days,
        {%- endif %}
        coalesce(item_activity.n_interactions, 0) as n_interactions,
        coalesce(item_activity.n_users, 0) as n_users,
        item_activity.first_interaction_at

    from items
    left join item_activity on items.item_id = item_activity.item_id
    cross join reference_time

),

final as (

    select
        item_id,
        title,
        {%- for attribute in attributes %}
        {{ attribute }},
        {%- endfor %}
        n_interactions,
        n_users,
        row_number() over (order by n_interactions desc, item_id asc) as popularity_rank,
        first_interaction_at

    from joined

)

select * from final
