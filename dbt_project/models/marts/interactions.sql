-- Implicit feedback: one row per (user_id, item_id) with at least one positive event,
-- restricted to users and items present in the catalogs.

{%- set positive_event_types = var('positive_event_types') %}
{%- if positive_event_types is string %}
    {%- set positive_event_types = [positive_event_types] %}
{%- endif %}

with

events as (

    select * from {{ ref('stg_events') }}

),

users as (

    select user_id from {{ ref('stg_users') }}

),

items as (

    select item_id from {{ ref('stg_items') }}

),

positive_events as (

    select
        events.event_id,
        events.user_id,
        events.item_id,
        events.value,
        events.event_ts

    from events
    inner join users on events.user_id = users.user_id
    inner join items on events.item_id = items.item_id

    where events.event_type in (
        {%- for event_type in positive_event_types %}
        '{{ event_type }}'{{ ',' if not loop.last }}
        {%- endfor %}
    )
      and (events.value is null or events.value >= {{ var('min_positive_value') }})

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id, item_id
            order by event_ts desc, event_id desc
        ) as recency_rank

    from positive_events

),

final as (

    select
        user_id,
        item_id,
        min(event_ts) as first_interaction_at,
        max(event_ts) as last_interaction_at,
        count(*) as n_events,
        max(case when recency_rank = 1 then value end) as last_value

    from ranked
    group by user_id, item_id

)

select * from final
