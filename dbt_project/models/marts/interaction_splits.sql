-- Assigns every interaction to exactly one of train / valid / test.
--
-- var('split_protocol'):
--   random_per_user  RecBole's default ratio split (RS, group_by user): each user's interactions
--                    are shuffled deterministically by md5(seed|user_id|item_id); the first
--                    n_train go to train, the next n_valid to valid, the last n_test to test.
--                    n_valid = floor(n * valid_ratio), n_test = floor(n * test_ratio); a split
--                    whose share n * ratio lies in (0, 1) is bumped to 1 while train keeps more
--                    than one row (test is considered first, then valid, as in RecBole).
--   temporal         global time cutoffs at quantiles of the interaction timestamps:
--                    ts < valid_cutoff -> train, ts < test_cutoff -> valid, else test.

{%- set protocol = split_protocol() %}

with

interactions as (

    select
        user_id,
        item_id,
        first_interaction_at

    from {{ ref('interactions') }}

),

{% if protocol == 'random_per_user' %}

shuffled as (

    select
        *,
        row_number() over (
            partition by user_id
            order by
                md5(concat('{{ var("split_seed") }}', '|', user_id, '|', item_id)),
                item_id
        ) as user_position

    from interactions

),

user_counts as (

    select
        user_id,
        count(*) as n,
        count(*) * cast({{ var('valid_ratio') }} as {{ type_double() }}) as valid_share,
        count(*) * cast({{ var('test_ratio') }} as {{ type_double() }}) as test_share

    from interactions
    group by user_id

),

floored_counts as (

    select
        *,
        floor(valid_share)::bigint as n_valid_floor,
        floor(test_share)::bigint as n_test_floor

    from user_counts

),

test_bumped as (

    select
        *,
        case
            when n - n_valid_floor - n_test_floor > 1 and test_share > 0 and test_share < 1
                then n_test_floor + 1
            else n_test_floor
        end as n_test

    from floored_counts

),

valid_bumped as (

    select
        *,
        case
            when n - n_valid_floor - n_test > 1 and valid_share > 0 and valid_share < 1
                then n_valid_floor + 1
            else n_valid_floor
        end as n_valid

    from test_bumped

),

split_counts as (

    select
        user_id,
        n - n_valid - n_test as n_train,
        n_valid,
        n_test

    from valid_bumped

),

assigned as (

    select
        shuffled.user_id,
        shuffled.item_id,
        shuffled.first_interaction_at,
        case
            when shuffled.user_position <= split_counts.n_train then 'train'
            when shuffled.user_position <= split_counts.n_train + split_counts.n_valid then 'valid'
            else 'test'
        end as split

    from shuffled
    inner join split_counts on shuffled.user_id = split_counts.user_id

),

{% else %}

cutoffs as (

    select
        {{ temporal_split_cutoffs('first_interaction_at') }}

    from interactions

),

assigned as (

    select
        interactions.user_id,
        interactions.item_id,
        interactions.first_interaction_at,
        case
            when interactions.first_interaction_at < cutoffs.valid_cutoff then 'train'
            when interactions.first_interaction_at < cutoffs.test_cutoff then 'valid'
            else 'test'
        end as split

    from interactions
    cross join cutoffs

),

{% endif %}

final as (

    select
        user_id,
        item_id,
        first_interaction_at as "timestamp",
        split

    from assigned

)

select * from final
