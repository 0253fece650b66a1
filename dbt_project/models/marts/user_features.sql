-- One row per catalog user with activity and demographic features.
-- Users without interactions are kept with n_interactions = 0.

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
        users.age,
        case
            when users.age is null then null
            when users.age < 18 then '<18'
            when users.age < 25 then '18-24'
            when users.age < 35 then '25-34'
            when users.age < 45 then '35-44'
            when users.age < 55 then '45-54'
            else '55+'
        end as age_bucket,
        users.gender,
        users.occupation,
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
