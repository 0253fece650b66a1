-- Every interaction appears in exactly one split: interaction_splits has as many rows as
-- interactions, no (user, item) pair is missing from it, and the three split models add up.

with

counts as (

    select
        (select count(*) from {{ ref('interactions') }}) as n_interactions,
        (select count(*) from {{ ref('interaction_splits') }}) as n_split_rows,
        (select count(*) from {{ ref('split_train') }})
            + (select count(*) from {{ ref('split_valid') }})
            + (select count(*) from {{ ref('split_test') }}) as n_in_split_models,
        (
            select count(*)
            from {{ ref('interactions') }} as interactions
            left join {{ ref('interaction_splits') }} as splits
                on interactions.user_id = splits.user_id
                and interactions.item_id = splits.item_id
            where splits.user_id is null
        ) as n_missing

)

select *
from counts
where n_interactions <> n_split_rows
   or n_interactions <> n_in_split_models
   or n_missing > 0
