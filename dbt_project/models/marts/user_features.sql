-- One row per user with activity features from interactions and the attributes the dataset
-- contract declares (numeric ones with `buckets` also as a `<name>_bucket` band). Catalog users
-- without interactions are kept with n_interactions = 0. Without a user catalogue (stg_users then
-- holds the users events mention), the features come from events alone.

with

users as (

    select * from {{ ref('stg_users') }}

),

interactions as (

    select * from {{ ref('interactions') }}

),

reference_time as (

    select max(last_interaction_at) as max_event_ts from interactions

),

user_activity as (

    select
        user_id,
        count(*) as n_interactions,
        min(first_interaction_at) as first_interaction_at,
        max(last_interaction_at) as last_interaction_at

    from interactions
    group by user_id

),

final as (

    select
        users.user_id,
        coalesce(user_activity.n_interactions, 0) as n_interactions,
        user_activity.first_interaction_at,
        user_activity.last_interaction_at,
        {{ dbt.datediff('user_activity.last_interaction_at', 'reference_time.max_event_ts', 'day') }}
            as days_since_last_interaction,
        {%- for column in contract_columns('users') %}
        users.{{ column.name }},
        {%- if column.buckets %}
        {{ contract_bucket('users.' ~ column.name, column.buckets) }} as {{ column.name }}_bucket,
        {%- endif %}
        {%- endfor %}
        case
            when coalesce(user_activity.n_interactions, 0) < {{ var('activity_low_max') }} then 'low'
            when user_activity.n_interactions < {{ var('activity_medium_max') }} then 'medium'
            else 'high'
        end as activity_level

    from users
    left join user_activity on users.user_id = user_activity.user_id
    cross join reference_time

)

select * from final
