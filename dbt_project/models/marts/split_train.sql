-- The train part of interaction_splits.

with

interaction_splits as (

    select * from {{ ref('interaction_splits') }}

),

final as (

    select
        user_id,
        item_id,
        "timestamp"

    from interaction_splits
    where split = 'train'

)

select * from final
