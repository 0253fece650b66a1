-- One row per catalog item with content and popularity features.
-- Items without interactions are kept with n_interactions = 0.

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
        items.genres,
        items.genre_list,
        items.release_year,
        {{ dbt.datediff('items.release_date', 'reference_time.max_event_ts::date', 'day') }} as item_age_days,
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
        genres,
        genre_list,
        release_year,
        item_age_days,
        n_interactions,
        n_users,
        row_number() over (order by n_interactions desc, item_id asc) as popularity_rank,
        first_interaction_at

    from joined

)

select * from final
