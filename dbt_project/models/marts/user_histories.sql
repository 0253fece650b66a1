-- One row per user with interactions: the chronological item sequence (sequential recommenders).

with

interactions as (

    select * from {{ ref('interactions') }}

),

final as (

    select
        user_id,
        {{ ordered_list('item_id', 'first_interaction_at, item_id') }}::{{ var('contract')['item_id_type'] }}[] as item_sequence,
        {{ ordered_list('first_interaction_at', 'first_interaction_at, item_id') }} as timestamp_sequence,
        count(*) as sequence_length

    from interactions
    group by user_id

)

select * from final
