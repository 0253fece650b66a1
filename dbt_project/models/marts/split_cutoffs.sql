-- One row describing the split that interaction_splits holds: protocol, seed, temporal cutoffs
-- (NULL for random_per_user) and the size of each split.

{%- set protocol = split_protocol() %}

with

interaction_splits as (

    select * from {{ ref('interaction_splits') }}

),

split_sizes as (

    select
        count(*) filter (where split = 'train') as n_train,
        count(*) filter (where split = 'valid') as n_valid,
        count(*) filter (where split = 'test') as n_test

    from interaction_splits

),

cutoffs as (

    {%- if protocol == 'temporal' %}
    select
        {{ temporal_split_cutoffs('"timestamp"') }}

    from interaction_splits
    {%- else %}
    select
        null::timestamp as valid_cutoff,
        null::timestamp as test_cutoff
    {%- endif %}

),

final as (

    select
        '{{ protocol }}'::varchar as split_protocol,
        {{ var('split_seed') }}::bigint as split_seed,
        cutoffs.valid_cutoff::timestamp as valid_cutoff,
        cutoffs.test_cutoff::timestamp as test_cutoff,
        split_sizes.n_train,
        split_sizes.n_valid,
        split_sizes.n_test

    from split_sizes
    cross join cutoffs

)

select * from final
